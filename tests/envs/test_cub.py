"""CUB-200-2011 env on generated data in the published layout: folder, .tgz, truncated .tgz.

The fixture has the real shape (200 class folders ``NNN.Name``, ``images.txt``, ``classes.txt``,
``image_class_labels.txt``) with 4 tiny JPEGs per class (some grayscale), each filled with a
colour that encodes its class index.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import metabench
import metabench_tests_fixtures_images as fx  # registered by tests/conftest.py
from metabench.data import file_digest
from metabench.data import manifest as MF
from metabench.envs import cub as C
from metabench.errors import ChecksumError, ConfigError, DataError
from metabench.testing import check_meta_env




SPLITS = ("train", "val", "test")
GRAY_EVERY = 7  # fixture classes with c % 7 == 3 are grayscale JPEGs


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("METABENCH_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    root = tmp_path_factory.mktemp("cub-folder")
    fx.cub_folder(root, per_class=4, grayscale_every=GRAY_EVERY)
    return root


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory, folder_root: Path) -> Path:
    out = tmp_path_factory.mktemp("cub-tgz")
    return fx.cub_tarball(out / "cub" / C.ARCHIVE, folder_root / "cub" / "CUB_200_2011")


def _patch_md5(monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    """Point the CUB manifest entry at the fixture's md5 (the published one rejects it)."""
    info = dataclasses.replace(C.CUB, files=(dataclasses.replace(C.CUB.files[0], md5=file_digest(archive, "md5")),))
    monkeypatch.setitem(MF.DATASETS, "cub", info)


def _rgb_class(c: int) -> bool:
    return c % GRAY_EVERY != 3


def test_chen_split_indices() -> None:
    s = C.chen_split()
    assert [len(s[k]) for k in SPLITS] == [100, 50, 50]
    assert s["train"][:4].tolist() == [0, 2, 4, 6]
    assert s["val"][:4].tolist() == [1, 5, 9, 13] and s["val"][-1] == 197
    assert s["test"][:4].tolist() == [3, 7, 11, 15] and s["test"][-1] == 199
    assert sorted(np.concatenate([s[k] for k in SPLITS]).tolist()) == list(range(200))


@pytest.fixture(scope="module")
def folder_env(folder_root: Path):
    return metabench.make(metabench.spec("cub-5w1s").replace(eval_tasks=10), root=str(folder_root), queries=3)


@pytest.mark.slow
def test_folder_form_passes_the_checker(folder_env) -> None:
    check_meta_env(folder_env)


def test_folder_form_samples_the_chen_split(folder_env) -> None:
    env = folder_env
    names = fx.cub_class_names()
    split = C.chen_split()
    for s in SPLITS:
        assert [n.split("/rot")[0] for n in env.class_names(s)] == [names[i] for i in split[s]]
    assert env.image_shape == (84, 84, 3) and env._images.shape == (800, 84, 84, 3)
    for s in SPLITS:
        task = env.sample_task(jax.random.key(2), s)
        xs = np.concatenate([np.asarray(task.support[0]), np.asarray(task.query[0])])
        ys = np.concatenate([np.asarray(task.support[1]), np.asarray(task.query[1])])
        by_label: dict[int, set[int]] = {}
        for x, y in zip(xs, ys):
            c = fx.colour_class(x[42, 42])
            if np.allclose(x[..., 0], x[..., 1]):  # a grayscale class: colour decoding does not apply
                continue
            assert c in set(split[s].tolist()), f"{s} task shows class {c}"
            by_label.setdefault(int(y), set()).add(c)
        assert all(len(v) == 1 for v in by_label.values())


def test_grayscale_jpegs_become_rgb_and_images_are_resized(folder_root: Path) -> None:
    data = C.load_cub(folder_root)
    assert data.pool.images.shape == (800, 84, 84, 3) and data.pool.images.dtype == np.uint8
    gray = data.pool.images[data.pool.offsets[3]]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    for c in (0, 1, 2, 100, 198):
        assert _rgb_class(c) and fx.colour_class(data.pool.images[data.pool.offsets[c], 42, 42]) == c
    assert data.pool.names[:2] == ("001.Bird_001", "002.Bird_002") and len(data.pool.names) == 200


def test_tarball_is_verified_extracted_safely_and_cleaned_up(tarball: Path, folder_root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tarball.parents[1]
    with pytest.raises(ChecksumError, match=rf"{C.ARCHIVE}: md5 mismatch: expected {C.ARCHIVE_MD5}"):
        C.load_cub(root)  # the fixture is not the published archive
    _patch_md5(monkeypatch, tarball)
    from_tgz = C.load_cub(root)
    from_folder = C.load_cub(folder_root)
    np.testing.assert_array_equal(np.asarray(from_tgz.pool.images), np.asarray(from_folder.pool.images))
    assert from_tgz.pool.names == from_folder.pool.names
    assert not list(cache.glob(".cub-extract.*")), "the temporary extraction must be removed"
    assert not (root / "cub" / "CUB_200_2011").exists(), "the data root is never written to"


def test_truncated_tarball_is_a_clear_error(tarball: Path, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = fx.truncate(tarball, tmp_path / "cub" / C.ARCHIVE, 0.6)
    with pytest.raises(ChecksumError, match=rf"{re.escape(str(bad))}: md5 mismatch"):
        C.load_cub(tmp_path)
    _patch_md5(monkeypatch, bad)  # even with a matching checksum the archive does not extract
    with pytest.raises(DataError, match=rf"{re.escape(str(bad))}: (corrupt or truncated|not a zip or tar)"):
        C.load_cub(tmp_path)
    assert not list(cache.glob(".cub-extract.*"))


def test_folder_is_preferred_over_the_archive(tarball: Path, folder_root: Path, tmp_path: Path) -> None:
    (tmp_path / "cub").mkdir()
    shutil.copy(tarball, tmp_path / "cub" / C.ARCHIVE)
    assert C.locate(tmp_path) == tmp_path / "cub" / C.ARCHIVE
    (tmp_path / "cub" / "CUB_200_2011" / "images").mkdir(parents=True)
    assert C.locate(tmp_path) == tmp_path / "cub" / "CUB_200_2011"


def test_download_true_fetches_the_published_archive(tarball: Path, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url, dest, *, md5=None, sha256=None, size=None):
        calls.append((url, Path(dest), md5))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)  # as the real download does
        shutil.copy(tarball, dest)
        return Path(dest)

    monkeypatch.setattr(C, "download_file", fake_download)
    with pytest.raises(DataError, match="download=True"):
        C.load_cub(tmp_path)
    assert calls == []
    _patch_md5(monkeypatch, tarball)
    data = C.load_cub(tmp_path, download=True)
    assert calls == [(C.ARCHIVE_URL, tmp_path / "cub" / C.ARCHIVE, file_digest(tarball, "md5"))]
    assert data.pool.images.shape == (800, 84, 84, 3)


def test_missing_data_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        metabench.make("cub-5w1s", root=tmp_path)
    msg = str(e.value)
    for needle in (str(tmp_path / "cub"), C.ARCHIVE, C.ARCHIVE_MD5, C.ARCHIVE_URL, "download=True", "CUB_200_2011/", "images.txt"):
        assert needle in msg


def test_folder_validation_errors(tmp_path: Path) -> None:
    folder = fx.cub_folder(tmp_path, per_class=1, size=(8, 8))
    lines = (folder / "images.txt").read_text().splitlines()
    (folder / "images.txt").write_text("\n".join([lines[0].replace("001.Bird_001/", "002.Bird_002/"), *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"images\.txt: image 1 \(002\.Bird_002/.*\) is not in the folder of its class 001\.Bird_001"):
        C.scan_folder(folder)
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    (folder / "images" / "005.Bird_005" / "Bird_005_0001_5.jpg").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) listed in images\.txt are missing, e\.g\. .*Bird_005_0001_5\.jpg"):
        C.load_cub(tmp_path)
    shutil.rmtree(folder / "images" / "200.Bird_200")
    with pytest.raises(DataError, match="expected 200 class folders NNN.Class_Name, found 199"):
        C.scan_folder(folder)
    (folder / "images" / "200.Bird_200").mkdir()
    (folder / "classes.txt").write_text((folder / "classes.txt").read_text().replace("7 007.Bird_007", "7 007.Other"))
    with pytest.raises(DataError, match=r"classes\.txt: its classes differ"):
        C.scan_folder(folder)


def test_ways_and_shots_limits(folder_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"ways=51 but split 'val' has only 50 classes; use ways <= 50"):
        metabench.make("cub-5w1s", root=folder_root, ways=51, queries=3)
    with pytest.raises(ConfigError, match=r"shots \+ queries = 5 \+ 15 = 20 .* only 4 images; use shots \+ queries <= 4"):
        metabench.make("cub-5w5s", root=folder_root)
