"""Omniglot env on generated Omniglot-shaped zips (always) and on the real data (when present).

The fixture zips are named and laid out like Lake's (``<stem>/<Alphabet>/characterNN/<id>_<drawer>.png``,
105x105, 1-bit): a few characters per alphabet, 20 drawers, random stroke-like pixels so that
every image (and each of its rotations) is unique.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import metabench
from metabench.data import cache_dir, file_digest
from metabench.data import manifest as M
from metabench.envs import omniglot_splits as S
from metabench.envs.omniglot import decode_image
from metabench.errors import ChecksumError, ConfigError, DataError
from metabench.testing import check_meta_env

SMALL1 = ("Balinese", "Early_Aramaic", "Greek", "Korean", "Latin")
SMALL2 = ("Greek", "Japanese_(katakana)", "Latin", "Sanskrit", "Tagalog")
CHARS = {"Early_Aramaic": 2, "Greek": 2, "Latin": 2, "Tagalog": 1}  # others: 3
REAL = os.environ.get("METABENCH_DATA")
REAL_LITE = REAL is not None and (Path(REAL) / "omniglot" / "images_background_small1.zip").is_file()
VINYALS_DIR = Path(REAL or "/nonexistent") / "splits" / "omniglot-vinyals"


def _png(rng: np.random.Generator, size: int = 105) -> bytes:
    """A 1-bit image: white background, a few random black blobs (strokes)."""
    if size < 32:  # tiny fixture images: random pixels
        img = rng.random((size, size)) < 0.7
    else:
        img = np.ones((size, size), dtype=bool)
    for _ in range(6 if size >= 32 else 0):
        y, x = rng.integers(0, size - 12, 2)
        h, w = rng.integers(4, 12, 2)
        img[y : y + h, x : x + w] = False
    buf = io.BytesIO()
    Image.fromarray(img).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _alphabet_seed(alphabet: str) -> int:
    return int.from_bytes(alphabet.encode()[:8].ljust(8, b"\0"), "little") % (2**32)


def write_zip(path: Path, alphabets: dict[str, int], drawers: int = 20, size: int = 105) -> Path:
    """An Omniglot-shaped zip; an alphabet's images depend only on its name (identical across zips)."""
    stem = path.name[:-4]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{stem}/", b"")
        for alphabet, n_chars in alphabets.items():
            rng = np.random.default_rng(_alphabet_seed(alphabet))
            for c in range(1, n_chars + 1):
                for d in range(1, drawers + 1):
                    zf.writestr(f"{stem}/{alphabet}/character{c:02d}/{1000 + c:04d}_{d:02d}.png", _png(rng, size))
    return path


def _patched_manifest(monkeypatch: pytest.MonkeyPatch, files: list[Path]) -> None:
    """Point the Omniglot manifest at the fixtures' sha256 (the real checksums would reject them)."""
    sums = {f.name: file_digest(f) for f in files}
    new = tuple(
        dataclasses.replace(rf, md5=None, sha256=sums[rf.name]) if rf.name in sums else rf for rf in M.OMNIGLOT.files
    )
    monkeypatch.setitem(M.DATASETS, "omniglot", dataclasses.replace(M.OMNIGLOT, files=new))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def lite_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    (root / "omniglot").mkdir(parents=True)
    z1 = write_zip(root / "omniglot" / "images_background_small1.zip", {a: CHARS.get(a, 3) for a in SMALL1})
    z2 = write_zip(root / "omniglot" / "images_background_small2.zip", {a: CHARS.get(a, 3) for a in SMALL2})
    _patched_manifest(monkeypatch, [z1, z2])
    return root


def _identify(env, x: np.ndarray) -> tuple[int, int]:
    """(pool row, rotation k) with ``rot90(stored[row], k) == x * 255``; fails unless exactly one."""
    stored = np.asarray(env._images)[..., 0]
    pixels = np.round(x[..., 0] * 255.0)
    np.testing.assert_allclose(x[..., 0] * 255.0, pixels, atol=1e-3)  # x is uint8 / 255
    pixels = pixels.astype(np.uint8)
    hits = [
        (int(i), k)
        for k in range(4)
        for i in np.flatnonzero(np.all(np.rot90(stored, k, axes=(1, 2)) == pixels[None], axis=(1, 2)))
    ]
    assert len(hits) == 1, f"sampled image matches {len(hits)} stored (image, rotation) pairs"
    return hits[0]


def test_lite_on_fixture_zips_shapes_dtypes_and_class_counts(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    task = env.sample_task(jax.random.key(0), "train")
    (sx, sy), (qx, qy) = task.support, task.query
    assert sx.shape == (5, 28, 28, 1) and qx.shape == (75, 28, 28, 1)
    assert sx.dtype == np.float32 and sy.dtype == np.int32
    assert float(sx.min()) >= 0.0 and float(sx.max()) <= 1.0
    np.testing.assert_array_equal(sy, np.arange(5))
    np.testing.assert_array_equal(qy, np.repeat(np.arange(5), 15))
    # train: katakana 3 + Korean 3 + Sanskrit 3 + Balinese 3 characters, 4 rotations each
    assert [env.num_classes(s) for s in ("train", "val", "test")] == [48, 8, 20]
    assert env.image_shape == (28, 28, 1)
    assert env.spec.data_hash and len(env.spec.data_hash) == 64
    assert env._images.dtype == np.uint8 and env._images.shape == (len(env.pool_names) * 20, 28, 28, 1)


def test_greek_and_latin_are_deduplicated(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    names = env.pool_names
    assert len(names) == len(set(names)) == 4 * 3 + 3 * 2 + 1  # 8 alphabets, Greek/Latin once
    assert int(np.asarray(env._counts).max()) == 20


def test_images_are_resized_and_inverted(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    row = env.pool_names.index("Korean/character02")
    with zipfile.ZipFile(lite_root / "omniglot" / "images_background_small1.zip") as zf:
        png = zf.read("images_background_small1/Korean/character02/1002_01.png")
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L").resize((28, 28), Image.Resampling.BILINEAR))
    stored = np.asarray(env._images[int(env._offsets[row]), :, :, 0])
    np.testing.assert_array_equal(stored, 255 - grey)
    # strokes bright on a dark background: mostly-white drawings become mostly-dark images
    assert np.median(np.asarray(env._images)) == 0
    assert decode_image(png, 28, "x").dtype == np.uint8


def test_every_image_of_a_class_carries_the_class_rotation(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    offsets, counts = np.asarray(env._offsets), np.asarray(env._counts)
    split_classes = set(env.class_names("train"))
    seen_rotations = set()
    for seed in range(3):
        task = env.sample_task(jax.random.key(seed), "train")
        xs = np.concatenate([np.asarray(task.support[0]), np.asarray(task.query[0])])
        ys = np.concatenate([np.asarray(task.support[1]), np.asarray(task.query[1])])
        per_label: dict[int, set[tuple[int, int]]] = {}
        for x, y in zip(xs, ys):
            row, k = _identify(env, x)
            base = int(np.searchsorted(offsets, row, side="right") - 1)
            assert offsets[base] <= row < offsets[base] + counts[base]
            per_label.setdefault(int(y), set()).add((base, k))
        for y, classes in per_label.items():
            assert len(classes) == 1, f"label {y} mixes characters/rotations {classes}"
            (base, k), = classes
            assert f"{env.pool_names[base]}/rot{90 * k:03d}" in split_classes
            seen_rotations.add(k)
        assert len({next(iter(c)) for c in per_label.values()}) == 5  # 5 distinct classes
    assert len(seen_rotations) > 1


def test_splits_are_disjoint_by_alphabet(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    alph = {s: {c.split("/")[0] for c in env.class_names(s)} for s in ("train", "val", "test")}
    assert alph == {s: set(S.LITE[s]) for s in alph}
    assert not (alph["train"] & alph["val"]) and not (alph["train"] & alph["test"]) and not (alph["val"] & alph["test"])


def test_deterministic_and_key_dependent(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    a = env.sample_task(jax.random.key(7), "test")
    b = metabench.make("omniglot-lite-5w1s", root=lite_root).sample_task(jax.random.key(7), "test")
    c = env.sample_task(jax.random.key(8), "test")
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.support[0], c.support[0])


@pytest.mark.slow
def test_conformance_checker(lite_root: Path) -> None:
    env = metabench.make("omniglot-lite-5w1s", root=lite_root)
    hashes = check_meta_env(env, second_process=False)
    assert hashes and all(len(h) == 64 for h in hashes.values())


def test_cache_is_reused_and_extracted_folders_work(lite_root: Path) -> None:
    env1 = metabench.make("omniglot-lite-5w1s", root=lite_root)
    assert env1.cache_info.built and env1.cache_info.path.is_dir()
    env2 = metabench.make("omniglot-lite-5w5s", root=lite_root)
    assert not env2.cache_info.built and env2.cache_info.path == env1.cache_info.path
    assert env2.spec.data_hash == env1.spec.data_hash
    # the same data as extracted folders instead of zips
    other = lite_root.parent / "extracted"
    for stem in ("images_background_small1", "images_background_small2"):
        with zipfile.ZipFile(lite_root / "omniglot" / f"{stem}.zip") as zf:
            zf.extractall(other / "omniglot")
    env3 = metabench.make("omniglot-lite-5w1s", root=other)
    assert env3.pool_names == env1.pool_names
    np.testing.assert_array_equal(np.asarray(env3._images), np.asarray(env1._images))


def test_missing_data_names_the_files_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        metabench.make("omniglot-lite-5w1s", root=tmp_path / "nothing")
    msg = str(e.value)
    for part in ("images_background_small1.zip", "images_background_small2.zip", str(tmp_path / "nothing" / "omniglot"), "METABENCH_DATA"):
        assert part in msg
    with pytest.raises(DataError, match="images_background.zip and images_evaluation.zip"):
        metabench.make("omniglot-5w1s", root=tmp_path / "nothing")


def _no_cache_leftovers() -> None:
    root = cache_dir()
    if root.exists():
        assert not [p for p in root.iterdir() if p.name.startswith("omniglot") or p.name.endswith((".tmp", ".stale"))]


def test_truncated_zip_is_a_clear_error_and_leaves_no_cache(lite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = lite_root / "omniglot" / "images_background_small2.zip"
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    _patched_manifest(monkeypatch, [lite_root / "omniglot" / "images_background_small1.zip", z])
    with pytest.raises(DataError, match="images_background_small2.zip"):
        metabench.make("omniglot-lite-5w1s", root=lite_root)
    _no_cache_leftovers()


def test_checksum_mismatch_names_the_file(lite_root: Path) -> None:
    z = lite_root / "omniglot" / "images_background_small1.zip"
    write_zip(z, {a: CHARS.get(a, 3) for a in SMALL1}, drawers=19)  # a valid zip, other content
    with pytest.raises(ChecksumError, match="images_background_small1.zip.*sha256 mismatch"):
        metabench.make("omniglot-lite-5w1s", root=lite_root)
    _no_cache_leftovers()
    env = metabench.make("omniglot-lite-5w1s", root=lite_root, verify=False)
    assert int(np.asarray(env._counts).min()) == 19


def test_unreadable_image_names_the_member(lite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = lite_root / "omniglot" / "images_background_small2.zip"
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("images_background_small2/Tagalog/character01/bad_99.png", b"not a png at all")
    _patched_manifest(monkeypatch, [lite_root / "omniglot" / "images_background_small1.zip", z])
    with pytest.raises(DataError, match=r"images_background_small2.zip:images_background_small2/Tagalog/character01/bad_99.png"):
        metabench.make("omniglot-lite-5w1s", root=lite_root)
    _no_cache_leftovers()


def test_bad_options(lite_root: Path) -> None:
    with pytest.raises(ConfigError, match="split_scheme"):
        metabench.make("omniglot-lite-5w1s", root=lite_root, split_scheme="vinyal")
    with pytest.raises(ConfigError, match="image_size"):
        metabench.make("omniglot-lite-5w1s", root=lite_root, image_size=0)
    with pytest.raises(ConfigError, match="ways"):
        metabench.make("omniglot-lite-5w1s", root=lite_root, ways=9)  # val has 2 characters x 4 rotations


def test_image_size_override_gets_its_own_cache(lite_root: Path) -> None:
    a = metabench.make("omniglot-lite-5w1s", root=lite_root)
    b = metabench.make("omniglot-lite-5w1s", root=lite_root, image_size=14)
    assert b.sample_task(jax.random.key(0)).support[0].shape == (5, 14, 14, 1)
    assert a.spec.data_hash != b.spec.data_hash and b.spec.overrides == ("image_size", "root")


def test_vinyals_and_lake_on_a_tiny_full_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every character of the full set, 2 drawers, 8x8 images: the split schemes' class counts."""
    sizes = S.alphabet_sizes()
    d = tmp_path / "full" / "omniglot"
    d.mkdir(parents=True)
    bg = write_zip(d / "images_background.zip", {a: sizes[a] for a in S.BACKGROUND_ALPHABETS}, drawers=2, size=8)
    ev = write_zip(d / "images_evaluation.zip", {a: sizes[a] for a in S.EVALUATION_ALPHABETS}, drawers=2, size=8)
    _patched_manifest(monkeypatch, [bg, ev])
    env = metabench.make("omniglot-5w1s", root=d.parent, queries=1)
    assert [env.num_classes(s) for s in ("train", "val", "test")] == [4112, 688, 1692]
    for split in ("train", "val", "test"):
        assert env.class_names(split) == S.vinyals_classes(split)
    lake = metabench.make("omniglot-5w1s", root=d.parent, queries=1, split_scheme="lake")
    assert [lake.num_classes(s) for s in ("train", "val", "test")] == [964 - 158, 158, 659]
    assert all(c.endswith("/rot000") for c in lake.class_names("train"))
    assert lake.spec.data_hash == env.spec.data_hash  # one cache for both schemes


def test_vinyals_split_encoding_counts() -> None:
    counts = [len(S.vinyals_characters(s)) for s in ("train", "val", "test")]
    assert counts == [1028, 172, 423]
    gurmukhi = {s: [c for c in S.vinyals_characters(s) if c.startswith("Gurmukhi/")] for s in ("train", "test")}
    assert (gurmukhi["train"][-1], gurmukhi["test"][0]) == ("Gurmukhi/character41", "Gurmukhi/character42")


# -- real data ---------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.skipif(not VINYALS_DIR.is_dir(), reason="published Vinyals split lists not found under $METABENCH_DATA/splits")
def test_vinyals_lists_match_the_published_files() -> None:
    for split in ("train", "val", "test"):
        published = (VINYALS_DIR / f"{split}.txt").read_text().split()
        assert S.vinyals_classes(split) == published
    trainval = (VINYALS_DIR / "trainval.txt").read_text().split()
    assert S.vinyals_classes("train") + S.vinyals_classes("val") == trainval


@pytest.mark.data
@pytest.mark.skipif(not REAL_LITE, reason="real Omniglot small zips not found under $METABENCH_DATA/omniglot")
def test_real_lite_data() -> None:
    env = metabench.make("omniglot-lite-5w1s")
    task = env.sample_task(jax.random.key(0), "train")
    assert task.support[0].shape == (5, 28, 28, 1) and task.query[0].shape == (75, 28, 28, 1)
    assert [env.num_classes(s) for s in ("train", "val", "test")] == [153 * 4, 22 * 4, 67 * 4]
    assert len(env.pool_names) == 242 and set(np.asarray(env._counts).tolist()) == {20}
    assert np.median(np.asarray(env._images)) == 0  # inverted: dark background


def test_download_true_fetches_verified_zips_from_a_local_server(lite_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """download=True fetches the manifest's URLs (here a 127.0.0.1 server holding the fixture zips)."""
    import functools
    import http.server
    import threading

    served = lite_root / "omniglot"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        info = M.DATASETS["omniglot"]
        files = tuple(dataclasses.replace(f, url=url + f.name) for f in info.files)
        monkeypatch.setitem(M.DATASETS, "omniglot", dataclasses.replace(info, files=files))
        empty = tmp_path / "fresh"
        with pytest.raises(DataError, match="download=True"):
            metabench.make("omniglot-lite-5w1s", root=empty)
        env = metabench.make("omniglot-lite-5w1s", root=empty, download=True)
        for stem in ("images_background_small1", "images_background_small2"):
            assert (empty / "omniglot" / f"{stem}.zip").read_bytes() == (served / f"{stem}.zip").read_bytes()
        assert env.num_classes("train") == 48
        # a tampered file on the server fails its checksum and is not kept
        (empty / "omniglot" / "images_background_small2.zip").unlink()
        (served / "images_background_small2.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
        with pytest.raises(ChecksumError, match="images_background_small2.zip"):
            metabench.make("omniglot-lite-5w1s", root=empty, download=True)
        assert not (empty / "omniglot" / "images_background_small2.zip").exists()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
