"""miniImageNet few-shot classification (Vinyals et al. 2016) with the Ravi & Larochelle (2017) split.

Description
    N-way K-shot classification of 84x84 colour photographs: 100 ImageNet classes of 600
    images each. Ids ``mini-imagenet-5w1s`` and ``mini-imagenet-5w5s`` (15 queries per class).

Data
    No official download exists (the images are ImageNet's). Put ONE of these forms under
    ``<data root>/mini-imagenet/`` (data root: ``root=``, else ``$METABENCH_DATA``, else the
    per-user data directory, see ``metabench.data.root``):

    (a) the split CSVs ``train.csv``, ``val.csv``, ``test.csv`` (header ``filename,label``)
        and an ``images/`` folder holding the JPEGs they name (``images/<filename>``, or
        ``images/<label>/<filename>``). JPEGs that are not 84x84 are resized to 84x84 with
        PIL's Lanczos filter (the filter of Ravi & Larochelle's ``proc_images.py``);
        every image is converted to RGB.
    (b) the widely shared pickle caches ``mini-imagenet-cache-train.pkl``,
        ``mini-imagenet-cache-val.pkl`` (or ``-validation.pkl``) and
        ``mini-imagenet-cache-test.pkl``: a dict with ``image_data`` (uint8 ``(N, 84, 84, 3)``)
        and ``class_dict`` (wnid -> list of row indices); Python-2 pickles are accepted.
        Pickles can run code, so they are read with a restricted unpickler that admits only
        numpy arrays, dicts, lists, strings and numbers (``_SafeUnpickler``).

    When both forms are present the pickles are used. Either form is converted once into a
    ``uint8[60000, 84, 84, 3]`` cache (``metabench.data.cache``; classes in the order of
    ``envs/mini_imagenet_splits.py``, images in file / index order) that later runs
    memory-map. ``spec.data_hash`` is the cache's data hash (source contents + settings).

Task distribution
    The shared ``ClassificationEnv`` sampler: ``ways`` classes of a split without
    replacement, ``shots + queries`` distinct images of each, labels ``0..ways-1`` in a
    random order per task, images float32 in ``[0, 1]``, NHWC ``(84, 84, 3)``.

Splits
    ``train`` 64, ``val`` 16, ``test`` 20 classes: the published Ravi & Larochelle split
    (``envs/mini_imagenet_splits.py``), checked class by class against the data.

Version history
    v0: initial version.
"""

from __future__ import annotations

import concurrent.futures
import csv
import functools
import os
import pickle
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.data.cache import load_or_build
from metabench.data.manifest import DatasetInfo, RemoteFile, datasets, register_dataset
from metabench.data.root import data_root
from metabench.envs.mini_imagenet_splits import RAVI_SPLIT
from metabench.errors import DataError
from metabench.spec import EnvSpec

#: Directory of the dataset under the data root.
SUBDIR = "mini-imagenet"
#: Side of the square images.
IMAGE_SIZE = 84
SPLITS = ("train", "val", "test")
#: Accepted pickle names per split, in order of preference.
PICKLE_NAMES: Mapping[str, tuple[str, ...]] = {
    "train": ("mini-imagenet-cache-train.pkl",),
    "val": ("mini-imagenet-cache-val.pkl", "mini-imagenet-cache-validation.pkl"),
    "test": ("mini-imagenet-cache-test.pkl",),
}
#: Bumped when the conversion into the cache changes.
CACHE_VERSION = 1

MINI_IMAGENET = DatasetInfo(
    name="mini-imagenet",
    subdir=SUBDIR,
    files=(
        RemoteFile("train.csv"),
        RemoteFile("val.csv"),
        RemoteFile("test.csv"),
        RemoteFile("mini-imagenet-cache-train.pkl"),
        RemoteFile("mini-imagenet-cache-val.pkl"),
        RemoteFile("mini-imagenet-cache-test.pkl"),
    ),
    instructions=(
        "miniImageNet has no official download. Put in <data root>/mini-imagenet/ either the Ravi & "
        "Larochelle split CSVs train.csv, val.csv, test.csv (filename,label) together with images/ holding "
        "the 60,000 JPEGs they name, or the pickle caches mini-imagenet-cache-train.pkl, "
        "mini-imagenet-cache-val.pkl (or -validation.pkl) and mini-imagenet-cache-test.pkl."
    ),
    alternatives=(
        "mini-imagenet-cache-validation.pkl instead of mini-imagenet-cache-val.pkl",
        "images/<label>/<filename> instead of images/<filename>",
    ),
    variants=(
        ("csv", ("train.csv", "val.csv", "test.csv")),
        ("pickle", ("mini-imagenet-cache-train.pkl", "mini-imagenet-cache-val.pkl", "mini-imagenet-cache-test.pkl")),
    ),
    prepare_ids=(("csv", "mini-imagenet-5w1s"), ("pickle", "mini-imagenet-5w1s")),
)


class LoadedImages(NamedTuple):
    """A dataset held once as uint8, with its class splits.

    pool: ``ImagePool`` (``uint8[N, 84, 84, 3]``, memory-mapped from the cache).
    classes: split -> ``int32[n_classes]`` indices of the pool's base classes.
    data_hash: the cache's data hash.
    """

    pool: ImagePool
    classes: Mapping[str, np.ndarray]
    data_hash: str


# -- the restricted unpickler ------------------------------------------------------------


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a miniImageNet pickle may name: what numpy arrays and plain containers need."""
    import codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    plain = {"dict": dict, "list": list, "tuple": tuple, "str": str, "int": int, "float": float, "bytes": bytes, "bytearray": bytearray}
    for mod in ("builtins", "__builtin__"):
        for name, obj in plain.items():
            allowed[(mod, name)] = obj
    allowed[("__builtin__", "unicode")] = str
    allowed[("__builtin__", "long")] = int
    # Python 3 pickles of protocol <= 2 store bytes as _codecs.encode(text, "latin1").
    allowed[("_codecs", "encode")] = codecs.encode
    return allowed


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except those numpy arrays and plain containers need.

    Python-2 pickles are read with ``encoding="latin1"`` (the numpy-recommended setting).
    """

    def __init__(self, file: Any, path: Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        obj = _allowed_globals().get((module, name))
        if obj is None:
            raise DataError(
                f"{self._path}: refused to load the global {module}.{name}: a miniImageNet pickle holds only "
                "numpy arrays, dicts, lists, strings and numbers, and pickles can run code. This file is not "
                "a plain miniImageNet cache; obtain it again from a trusted source (or use the CSV + images/ form)."
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._path}: refused a persistent reference in the pickle; not a plain miniImageNet cache")


def safe_load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` admitting only numpy arrays and plain containers; errors name the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, path).load()
    except DataError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # UnpicklingError, EOFError (truncated), ValueError, ...
        raise DataError(
            f"{path}: cannot read the pickle ({type(e).__name__}: {e}); the file is corrupt or truncated, "
            "obtain it again"
        ) from e


# -- validation helpers ---------------------------------------------------------------------


def _few(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _text(key: Any, path: Path) -> str:
    if isinstance(key, bytes):
        try:
            return key.decode("ascii")
        except UnicodeDecodeError:
            raise DataError(f"{path}: key {key!r} is not ASCII text") from None
    if isinstance(key, str):
        return key
    raise DataError(f"{path}: expected string keys, got {type(key).__name__} {key!r}")


def check_class_list(path: Path, split: str, names: Sequence[str]) -> None:
    """Raise ``DataError`` naming ``path`` unless ``names`` is exactly the Ravi class list of ``split``."""
    expected = RAVI_SPLIT[split]
    dups = sorted(n for n, c in Counter(names).items() if c > 1)
    if dups:
        raise DataError(f"{path}: class(es) listed more than once: {_few(dups)}")
    have = set(names)
    missing = [w for w in expected if w not in have]
    extra = sorted(w for w in have if w not in set(expected))
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} class(es) of the Ravi {split} split: {_few(missing)}")
    if extra:
        where = {w: s for s, ws in RAVI_SPLIT.items() for w in ws}
        parts.append(
            f"{len(extra)} class(es) outside the Ravi {split} split: "
            + _few([f"{w} (in {where[w]})" if w in where else f"{w} (unknown)" for w in extra])
        )
    raise DataError(
        f"{path}: {'; '.join(parts)}. metabench uses the Ravi & Larochelle split (64/16/20 classes, "
        "listed in metabench/envs/mini_imagenet_splits.py); check that the file belongs to that split."
    )


# -- reading the pickle form ----------------------------------------------------------------


def read_pickle_split(path: Path, split: str) -> tuple[np.ndarray, list[int]]:
    """The images of one split pickle in Ravi class order, and the per-class counts.

    Returns ``(uint8[N, 84, 84, 3], counts)`` with classes ordered as ``RAVI_SPLIT[split]``.
    """
    obj = safe_load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict with 'image_data' and 'class_dict', got {type(obj).__name__}")
    if len({_text(k, path) for k in obj}) != len(obj):
        raise DataError(f"{path}: the same key appears both as text and as bytes")
    obj = {_text(k, path): v for k, v in obj.items()}
    missing = [k for k in ("image_data", "class_dict") if k not in obj]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; found {sorted(obj)}. Not a miniImageNet cache pickle.")
    images, class_dict = obj["image_data"], obj["class_dict"]
    if not isinstance(images, np.ndarray):
        raise DataError(f"{path}: 'image_data' must be a numpy array, got {type(images).__name__}")
    if images.ndim != 4:
        raise DataError(f"{path}: 'image_data' must be (N, 84, 84, 3), got shape {images.shape}")
    if images.shape[3] != 3:
        raise DataError(f"{path}: 'image_data' must have 3 colour channels (N, 84, 84, 3), got {images.shape[3]} in {images.shape}")
    if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: images must be 84x84, got {images.shape[1]}x{images.shape[2]} (shape {images.shape})")
    if images.dtype != np.uint8:
        raise DataError(f"{path}: 'image_data' must be uint8, got {images.dtype}")
    if not isinstance(class_dict, dict):
        raise DataError(f"{path}: 'class_dict' must be a dict wnid -> indices, got {type(class_dict).__name__}")
    names = [_text(k, path) for k in class_dict]
    check_class_list(path, split, names)  # before merging: b"n01" and "n01" would collide silently
    class_dict = dict(zip(names, class_dict.values()))
    n = images.shape[0]
    order, counts = [], []
    for wnid in RAVI_SPLIT[split]:
        idx = np.asarray(class_dict[wnid])
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise DataError(f"{path}: class_dict[{wnid!r}] must be a list of integer indices")
        if idx.size == 0:
            raise DataError(f"{path}: class {wnid} has no images")
        if idx.min() < 0 or idx.max() >= n:
            raise DataError(f"{path}: class_dict[{wnid!r}] has indices outside 0..{n - 1}")
        order.append(idx.astype(np.int64))
        counts.append(int(idx.size))
    flat = np.concatenate(order)
    if np.unique(flat).size != flat.size:
        raise DataError(f"{path}: some image indices belong to more than one class in class_dict")
    if flat.size == n and np.array_equal(flat, np.arange(n)):
        return images, counts
    return images[flat], counts


def _build_from_pickles(files: Mapping[str, Path]) -> dict[str, np.ndarray]:
    blocks, counts = [], []
    for split in SPLITS:
        block, c = read_pickle_split(files[split], split)
        blocks.append(block)
        counts += c
    images = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    del blocks
    return {"images": images, "counts": np.asarray(counts, dtype=np.int32)}


# -- reading the CSV + JPEG form ------------------------------------------------------------


def read_split_csv(path: Path, split: str) -> list[tuple[str, list[str]]]:
    """``[(wnid, [filename, ...]), ...]`` in Ravi class order from a ``filename,label`` CSV."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the CSV ({e})") from e
    if not rows or [c.strip().lower() for c in rows[0]] != ["filename", "label"]:
        got = rows[0] if rows else "an empty file"
        raise DataError(f"{path}: expected the header 'filename,label', got {got}")
    by_class: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{path}, line {lineno}: expected 'filename,label', got {row}")
        name, label = row[0].strip(), row[1].strip()
        if not name or not label:
            raise DataError(f"{path}, line {lineno}: empty filename or label")
        if name in seen:
            raise DataError(f"{path}, line {lineno}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = lineno
        by_class.setdefault(label, []).append(name)
    check_class_list(path, split, list(by_class))
    return [(w, by_class[w]) for w in RAVI_SPLIT[split]]


def load_rgb(path: Path, size: int) -> np.ndarray:
    """``uint8[size, size, 3]``: the image at ``path`` as RGB, resized with Lanczos if needed."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode the image ({e}); the file is corrupt, replace it") from e


def decode_images(paths: Sequence[Path], size: int, desc: str = "images") -> np.ndarray:
    """``uint8[len(paths), size, size, 3]``, decoded by a small thread pool (PIL releases the GIL)."""
    from tqdm.auto import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))
    fn: Callable[[Path], np.ndarray] = functools.partial(load_rgb, size=size)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool, tqdm(
        total=len(paths), desc=desc, unit="img", disable=len(paths) < 2000, leave=False
    ) as bar:
        for i, img in enumerate(pool.map(fn, paths, chunksize=64)):
            out[i] = img
            bar.update(1)
    return out


def _image_path(images_dir: Path, name: str, label: str) -> Path:
    flat = images_dir / name
    if flat.is_file():
        return flat
    nested = images_dir / label / name
    return nested if nested.is_file() else flat


def _build_from_csv(files: Mapping[str, Path]) -> dict[str, np.ndarray]:
    paths: list[Path] = []
    counts: list[int] = []
    owner: dict[str, Path] = {}
    for split in SPLITS:
        for wnid, names in read_split_csv(files[split], split):
            if wnid in owner:  # cannot happen with a valid Ravi split; guards a corrupted module
                raise DataError(f"{files[split]}: class {wnid} is also in {owner[wnid]}")
            owner[wnid] = files[split]
            paths += [_image_path(files["images"], n, wnid) for n in names]
            counts.append(len(names))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"{files['images']}: {len(missing)} image(s) named in the CSVs are missing, e.g. "
            f"{_few([p.name for p in missing], 3)}; put the JPEGs in {files['images']}/"
        )
    images = decode_images(paths, IMAGE_SIZE, desc="mini-imagenet")
    return {"images": images, "counts": np.asarray(counts, dtype=np.int32)}


# -- locating and loading -------------------------------------------------------------------


def missing_data_message(folder: Path, found: Sequence[str]) -> str:
    return (
        f"miniImageNet not found in {folder}. metabench cannot download it (the images are ImageNet's). "
        "Put ONE of these in that folder:\n"
        "  (a) the Ravi & Larochelle split CSVs train.csv, val.csv, test.csv (header filename,label) and "
        "images/ with the 60,000 JPEGs they name (84x84; others are resized);\n"
        "  (b) the pickle caches mini-imagenet-cache-train.pkl, mini-imagenet-cache-val.pkl (or "
        "mini-imagenet-cache-validation.pkl) and mini-imagenet-cache-test.pkl.\n"
        f"Found there: {', '.join(found) if found else 'nothing'}. The data root is the root= argument, "
        "else $METABENCH_DATA, else the per-user data directory (~/.local/share/metabench)."
    )


def locate(root: str | os.PathLike[str] | None = None) -> tuple[str, dict[str, Path]]:
    """``("pickle" | "csv", files)``: the form of the data under ``<data root>/mini-imagenet``."""
    folder = data_root(root) / SUBDIR
    pickles = {}
    for split in SPLITS:
        for name in PICKLE_NAMES[split]:
            if (folder / name).is_file():
                pickles[split] = folder / name
                break
    if len(pickles) == len(SPLITS):
        return "pickle", pickles
    csvs = {s: folder / f"{s}.csv" for s in SPLITS}
    if all(p.is_file() for p in csvs.values()) and (folder / "images").is_dir():
        return "csv", {**csvs, "images": folder / "images"}
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()) if folder.is_dir() else []
    raise DataError(missing_data_message(folder, found[:12]))


def load_mini_imagenet(root: str | os.PathLike[str] | None = None) -> LoadedImages:
    """The 100 miniImageNet classes (train 0-63, val 64-79, test 80-99) through the cache."""
    if MINI_IMAGENET.name not in datasets():
        register_dataset(MINI_IMAGENET)
    form, files = locate(root)
    if form == "pickle":
        sources = [files[s] for s in SPLITS]
        settings: dict[str, Any] = {"form": "pickle"}
        build = functools.partial(_build_from_pickles, files)
    else:
        sources = [files[s] for s in SPLITS] + [files["images"]]
        settings = {"form": "csv", "resize": "PIL.Image.LANCZOS", "mode": "RGB"}
        build = functools.partial(_build_from_csv, files)
    settings.update(dataset="mini-imagenet", split="ravi", size=IMAGE_SIZE, version=CACHE_VERSION)
    names = [w for s in SPLITS for w in RAVI_SPLIT[s]]
    arrays, info = load_or_build(f"mini-imagenet-{form}", sources, settings, build, meta={"classes": names})
    images, counts = arrays["images"], np.asarray(arrays["counts"], dtype=np.int32)
    if counts.shape != (len(names),) or int(counts.sum()) != images.shape[0] or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise DataError(f"{info.path}: the miniImageNet cache is inconsistent; delete that directory to rebuild it")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    pool = ImagePool(images, offsets, counts, tuple(names))
    bounds = np.cumsum([0] + [len(RAVI_SPLIT[s]) for s in SPLITS])
    classes = {s: np.arange(bounds[i], bounds[i + 1], dtype=np.int32) for i, s in enumerate(SPLITS)}
    return LoadedImages(pool, classes, info.data_hash)


def normalise_root(spec: EnvSpec, root: Any) -> tuple[EnvSpec, str | None]:
    """Record a path-like ``root`` as a string so the spec stays JSON-serialisable."""
    if root is None:
        return spec, None
    text = os.fspath(root)
    if spec.kwargs.get("root") is not None and spec.kwargs.get("root") != text:
        spec = spec.replace(kwargs={**spec.kwargs, "root": text})
    return spec, text


class MiniImageNet(ClassificationEnv):
    """miniImageNet N-way K-shot classification, Ravi & Larochelle split (module docstring)."""

    def __init__(
        self,
        spec: EnvSpec,
        *,
        ways: int,
        shots: int,
        queries: int = 15,
        root: str | os.PathLike[str] | None = None,
    ):
        spec, self.root = normalise_root(spec, root)
        super().__init__(spec, ways=ways, shots=shots, queries=queries)

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        data = load_mini_imagenet(self.root)
        return data.pool, {s: SplitTable.of(c) for s, c in data.classes.items()}, data.data_hash
