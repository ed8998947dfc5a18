"""miniImageNet env on generated data in the published formats, and the split against the real CSVs.

Fixtures (``tests/fixtures_images.py``): split CSVs + ``images/`` JPEGs, the pickle caches in the
Python-3 layout (protocols 2 and 5) and a genuine Python-2 layout, a malicious pickle. The real
split CSVs (``$METABENCH_DATA/splits/mini-imagenet-ravi/``) check the project's class lists.
"""

from __future__ import annotations

import csv
import os
import pickle
import pickletools
from pathlib import Path

import jax
import numpy as np
import pytest

import metabench
import metabench_tests_fixtures_images as fx  # registered by tests/conftest.py
from metabench.envs import mini_imagenet as M
from metabench.envs.mini_imagenet_splits import RAVI_SPLIT
from metabench.errors import ConfigError, DataError
from metabench.testing import check_meta_env




REAL_SPLITS = Path(os.environ.get("METABENCH_DATA") or "/nonexistent") / "splits" / "mini-imagenet-ravi"
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("METABENCH_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    root = tmp_path_factory.mktemp("mini-csv")
    fx.mini_imagenet_csv(root, per_class=6)
    return root


@pytest.fixture(scope="module")
def pickle_root(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    root = tmp_path_factory.mktemp("mini-pkl")
    fx.mini_imagenet_pickles(root, per_class=6, protocol=5)
    return root


def _small_spec(env_id: str, n: int = 10):
    return metabench.spec(env_id).replace(eval_tasks=n)


def _class_of(img: np.ndarray) -> int:
    """Global class index of a (flat-coloured) fixture image, from its centre pixel."""
    return fx.colour_class(np.asarray(img)[img.shape[0] // 2, img.shape[1] // 2])


# -- the split ------------------------------------------------------------------------------


def test_split_lists_are_the_ravi_sizes_and_disjoint() -> None:
    sizes = {s: len(RAVI_SPLIT[s]) for s in SPLITS}
    assert sizes == {"train": 64, "val": 16, "test": 20}
    every = [w for s in SPLITS for w in RAVI_SPLIT[s]]
    assert len(set(every)) == 100
    assert all(len(w) == 9 and w.startswith("n") and w[1:].isdigit() for w in every)


@pytest.mark.data
@pytest.mark.skipif(not (REAL_SPLITS / "train.csv").is_file(), reason=f"published split CSVs not in {REAL_SPLITS}")
def test_split_lists_match_the_published_csvs() -> None:
    for split in SPLITS:
        path = REAL_SPLITS / f"{split}.csv"
        with open(path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        labels = list(dict.fromkeys(label for _, label in rows))
        assert tuple(labels) == RAVI_SPLIT[split], f"{path} disagrees with envs/mini_imagenet_splits.py"
        parsed = M.read_split_csv(path, split)  # the loader's own parser on the full-size files
        assert [w for w, _ in parsed] == list(RAVI_SPLIT[split])
        assert {len(names) for _, names in parsed} == {600}


# -- CSV + JPEG form ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_env(csv_root: Path):
    return metabench.make(_small_spec("mini-imagenet-5w1s"), root=str(csv_root), queries=5)


@pytest.mark.slow
def test_csv_form_passes_the_checker(csv_env) -> None:
    check_meta_env(csv_env)


def test_csv_form_samples_the_right_classes(csv_env) -> None:
    env = csv_env
    assert [env.num_classes(s) for s in SPLITS] == [64, 16, 20]
    assert env.image_shape == (84, 84, 3)
    assert env._images.dtype == np.uint8 and env._images.shape == (600, 84, 84, 3)
    assert len(env.spec.data_hash) == 64
    for s in SPLITS:
        assert [n.split("/")[0] for n in env.class_names(s)] == list(RAVI_SPLIT[s])
    bounds = {"train": range(0, 64), "val": range(64, 80), "test": range(80, 100)}
    for s in SPLITS:
        task = env.sample_task(jax.random.key(5), s)
        (sx, sy), (qx, qy) = task.support, task.query
        assert sx.shape == (5, 84, 84, 3) and qx.shape == (25, 84, 84, 3)
        cls_of_label = {}
        for x, y in [*zip(np.asarray(sx), np.asarray(sy)), *zip(np.asarray(qx), np.asarray(qy))]:
            c = _class_of(x)
            assert c in bounds[s], f"{s} task holds an image of class {c}"
            assert cls_of_label.setdefault(int(y), c) == c, "one label, two classes"
        assert len(set(cls_of_label.values())) == 5


def test_csv_images_of_other_sizes_are_resized_and_nested_layout_works(tmp_path: Path, cache: Path) -> None:
    fx.mini_imagenet_csv(tmp_path, per_class=2, size=40, nested=True)
    data = M.load_mini_imagenet(tmp_path)
    assert data.pool.images.shape == (200, 84, 84, 3)
    assert [_class_of(data.pool.images[o]) for o in data.pool.offsets] == list(range(100))
    assert M.load_rgb(tmp_path / "mini-imagenet" / "images" / "n01532829" / "n0153282900000001.jpg", 84).shape == (84, 84, 3)


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("filename,label\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return path


def test_csv_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    train = [(f"{w}00000001.jpg", w) for w in RAVI_SPLIT["train"]]
    with pytest.raises(DataError, match=r"train\.csv, line 3: n0153282900000001\.jpg is listed twice"):
        M.read_split_csv(_csv(tmp_path / "train.csv", [train[0], *train]), "train")
    with pytest.raises(DataError, match=r"train\.csv: missing 1 class\(es\) of the Ravi train split: n13133613"):
        M.read_split_csv(_csv(tmp_path / "train.csv", train[:-1]), "train")
    val_class = RAVI_SPLIT["val"][0]
    with pytest.raises(DataError, match=rf"outside the Ravi train split: {val_class} \(in val\)"):
        M.read_split_csv(_csv(tmp_path / "train.csv", [*train, ("x.jpg", val_class)]), "train")
    with pytest.raises(DataError, match="expected the header 'filename,label'"):
        (tmp_path / "bad.csv").write_text("file,class\na.jpg,n1\n")
        M.read_split_csv(tmp_path / "bad.csv", "train")
    with pytest.raises(DataError, match=r"line 2: expected 'filename,label'"):
        (tmp_path / "bad.csv").write_text("filename,label\na.jpg,n1,extra\n")
        M.read_split_csv(tmp_path / "bad.csv", "train")


def test_synthetic_wnids_are_rejected_as_not_the_ravi_split(tmp_path: Path, cache: Path) -> None:
    fx.mini_imagenet_csv(tmp_path, per_class=1, classes=fx.synthetic_classes())
    with pytest.raises(DataError, match=r"train\.csv: missing 64 class\(es\).*64 class\(es\) outside.*\(unknown\)"):
        M.load_mini_imagenet(tmp_path)


def test_missing_and_corrupt_jpegs_are_named(tmp_path: Path, cache: Path) -> None:
    folder = fx.mini_imagenet_csv(tmp_path, per_class=1)
    victim = folder / "images" / "n0185567200000001.jpg"
    victim.unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) named in the CSVs are missing, e.g. n0185567200000001\.jpg"):
        M.load_mini_imagenet(tmp_path)
    victim.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"n0185567200000001\.jpg: cannot decode the image"):
        M.load_mini_imagenet(tmp_path)


# -- pickle forms ---------------------------------------------------------------------------


def _check_marked_pool(data: M.LoadedImages, per_class: int) -> None:
    """Pickle fixture images carry (class, image) in pixel [0, 0, :2]: Ravi order, index order."""
    pool = data.pool
    assert pool.names == tuple(w for s in SPLITS for w in RAVI_SPLIT[s])
    assert pool.counts.tolist() == [per_class] * 100
    marks = np.asarray(pool.images[:, 0, 0, :2])
    np.testing.assert_array_equal(marks[:, 0], np.repeat(np.arange(100), per_class))
    np.testing.assert_array_equal(marks[:, 1], np.tile(np.arange(per_class), 100))
    assert {s: c.tolist() for s, c in data.classes.items()} == {
        "train": list(range(64)),
        "val": list(range(64, 80)),
        "test": list(range(80, 100)),
    }


@pytest.mark.parametrize("style,protocol,val_name", [("py3", 5, "val"), ("py3", 2, "validation"), ("py2", 2, "validation")])
def test_pickle_layouts_load_identically(tmp_path: Path, cache: Path, style: str, protocol: int, val_name: str) -> None:
    fx.mini_imagenet_pickles(tmp_path, per_class=3, style=style, protocol=protocol, val_name=val_name)
    _check_marked_pool(M.load_mini_imagenet(tmp_path), 3)


def test_py2_fixture_is_a_real_python2_pickle(tmp_path: Path) -> None:
    folder = fx.mini_imagenet_pickles(tmp_path, per_class=1, style="py2")
    raw = (folder / fx.pickle_name("test")).read_bytes()
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    assert {"BINSTRING", "SHORT_BINSTRING", "GLOBAL"} <= ops and not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES"}
    assert b"numpy.core.multiarray\n_reconstruct\n" in raw
    with pytest.raises(UnicodeDecodeError):  # Python 3's default ASCII decoding cannot read it
        pickle.loads(raw)
    obj = M.safe_load_pickle(folder / fx.pickle_name("test"))
    assert obj["image_data"].shape == (20, 84, 84, 3) and len(obj["class_dict"]) == 20


def test_pickle_env_samples_from_the_cache(pickle_root: Path) -> None:
    env = metabench.make("mini-imagenet-5w1s", root=pickle_root, queries=5)
    assert isinstance(env.spec.kwargs["root"], str)  # a Path root is recorded as a string (JSON-able)
    env.spec.to_json()
    task = env.sample_task(jax.random.key(0), "test")
    classes = {int(round(float(x[0, 0, 0]) * 255)) for x in np.asarray(task.support[0])}
    assert len(classes) == 5 and classes <= set(range(80, 100))
    caches = set(Path(os.environ["METABENCH_CACHE"]).glob("mini-imagenet-pickle-*"))
    again = metabench.make("mini-imagenet-5w1s", root=pickle_root, queries=5)
    assert again.spec.data_hash == env.spec.data_hash
    assert set(Path(os.environ["METABENCH_CACHE"]).glob("mini-imagenet-pickle-*")) == caches  # loaded, not rebuilt
    np.testing.assert_array_equal(np.asarray(again._images), np.asarray(env._images))


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, cache: Path) -> None:
    folder = fx.mini_imagenet_pickles(tmp_path, per_class=1)
    marker = tmp_path / "pwned"
    fx.malicious_pickle(folder / fx.pickle_name("train"), marker)
    with pytest.raises(DataError, match=r"mini-imagenet-cache-train\.pkl: refused to load the global posix\.system"):
        M.load_mini_imagenet(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("func", [eval, exec, getattr, __import__, os.system])
def test_only_numpy_and_plain_globals_are_admitted(tmp_path: Path, func) -> None:
    class Payload:
        def __reduce__(self):
            return (func, ("1",))

    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"image_data": Payload()}, protocol=2))
    with pytest.raises(DataError, match=rf"p\.pkl: refused to load the global \w+\.{func.__name__}"):
        M.safe_load_pickle(path)


def _write(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def test_pickle_validation_errors_name_the_file(tmp_path: Path) -> None:
    good_dict = {w: [i] for i, w in enumerate(RAVI_SPLIT["val"])}
    img = np.zeros((16, 84, 84, 3), np.uint8)
    p = tmp_path / "mini-imagenet-cache-val.pkl"
    cases = [
        ([1, 2], "expected a dict with 'image_data' and 'class_dict', got list"),
        ({"image_data": img}, r"missing key\(s\) \['class_dict'\]"),
        ({"image_data": np.zeros((16, 32, 32, 3), np.uint8), "class_dict": good_dict}, "images must be 84x84, got 32x32"),
        ({"image_data": np.zeros((16, 84, 84, 1), np.uint8), "class_dict": good_dict}, "must have 3 colour channels"),
        ({"image_data": img.astype(np.float32), "class_dict": good_dict}, "must be uint8, got float32"),
        ({"image_data": img, "class_dict": {**good_dict, RAVI_SPLIT["val"][3]: []}}, f"class {RAVI_SPLIT['val'][3]} has no images"),
        ({"image_data": img, "class_dict": {**good_dict, RAVI_SPLIT["val"][3]: [99]}}, "indices outside 0..15"),
        ({"image_data": img, "class_dict": {**good_dict, RAVI_SPLIT["val"][3]: [0]}}, "more than one class"),
        ({"image_data": img, "class_dict": dict(list(good_dict.items())[1:])}, r"missing 1 class\(es\) of the Ravi val split"),
    ]
    for obj, message in cases:
        with pytest.raises(DataError, match=message) as e:
            M.read_pickle_split(_write(p, obj), "val")
        assert str(p) in str(e.value)
    # bytes keys (a Python-2 pickle read as bytes) are accepted
    images, counts = M.read_pickle_split(_write(p, {b"image_data": img, b"class_dict": {w.encode(): v for w, v in good_dict.items()}}), "val")
    assert images.shape == (16, 84, 84, 3) and counts == [1] * 16
    first = RAVI_SPLIT["val"][0]
    with pytest.raises(DataError, match=rf"class\(es\) listed more than once: {first}"):
        M.read_pickle_split(_write(p, {"image_data": img, "class_dict": {**good_dict, first.encode(): [0]}}), "val")


def test_truncated_pickle_is_a_data_error(tmp_path: Path, cache: Path) -> None:
    folder = fx.mini_imagenet_pickles(tmp_path, per_class=1)
    fx.truncate(folder / fx.pickle_name("val"), folder / fx.pickle_name("val"), 0.6)
    with pytest.raises(DataError, match=r"mini-imagenet-cache-val\.pkl: cannot read the pickle.*corrupt or truncated"):
        M.load_mini_imagenet(tmp_path)


# -- missing data and limits ----------------------------------------------------------------


def test_missing_data_says_what_to_get_and_where(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(DataError) as e:
        metabench.make("mini-imagenet-5w1s", root=tmp_path)
    msg = str(e.value)
    for needle in (str(tmp_path / "mini-imagenet"), "train.csv, val.csv, test.csv", "images/", "mini-imagenet-cache-train.pkl",
                   "mini-imagenet-cache-validation.pkl", "cannot download", "$METABENCH_DATA"):
        assert needle in msg
    (tmp_path / "mini-imagenet").mkdir()
    (tmp_path / "mini-imagenet" / "mini-imagenet-cache-train.pkl").write_bytes(b"")
    with pytest.raises(DataError, match=r"Found there: mini-imagenet-cache-train\.pkl"):
        M.load_mini_imagenet(tmp_path)


def test_ways_shots_and_queries_limits(pickle_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"ways=17 but split 'val' has only 16 classes; use ways <= 16"):
        metabench.make("mini-imagenet-5w1s", root=pickle_root, ways=17, queries=5)
    with pytest.raises(ConfigError, match=r"shots \+ queries = 5 \+ 15 = 20 .* only 6 images; use shots \+ queries <= 6"):
        metabench.make("mini-imagenet-5w5s", root=pickle_root)
    with pytest.raises(ConfigError, match="shots must be a positive integer"):
        metabench.make("mini-imagenet-5w1s", root=pickle_root, shots=0)
