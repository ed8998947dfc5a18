"""CUB-200-2011 few-shot classification (Wah et al. 2011) with the Chen et al. (2019) split.

Description
    N-way K-shot classification of 200 bird species, 11,788 photographs, resized to 84x84
    RGB. Ids ``cub-5w1s`` and ``cub-5w5s`` (15 queries per class).

Data
    ``<data root>/cub/`` holds either the published archive ``CUB_200_2011.tgz`` (md5
    ``97eceeb196236b17998738112f37df78``; ``download=True`` fetches it from
    ``ARCHIVE_URL``) or the extracted folder ``CUB_200_2011/`` with
    ``images/NNN.Class_Name/*.jpg``, ``images.txt``, ``classes.txt`` and
    ``image_class_labels.txt``. The folder is used when both are present. An archive is
    checked against the md5 of its manifest entry (``metabench.data.manifest``), extracted with ``metabench.data.extract.safe_extract`` into a
    temporary folder of the cache directory (the data root may be read-only) and removed
    after conversion. Every image is converted to RGB (CUB has a few grayscale and CMYK
    JPEGs) and resized to 84x84 with PIL's Lanczos filter, ignoring the aspect ratio (no
    crop). The result is cached as ``uint8[11788, 84, 84, 3]`` (classes in sorted folder
    order, images sorted by path) and memory-mapped by later runs.

Task distribution
    The shared ``ClassificationEnv`` sampler (see ``metabench.classification``).

Splits (Chen et al. 2019, ``write_CUB_filelist.py``)
    Sort the 200 class folders; class ``i`` is ``train`` (base) if ``i % 2 == 0`` (100
    classes), ``val`` if ``i % 4 == 1`` (50), ``test`` (novel) if ``i % 4 == 3`` (50).

Version history
    v0: initial version.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.data.cache import load_or_build
from metabench.data.checksum import verify_file
from metabench.data.download import download as download_file
from metabench.data.extract import safe_extract
from metabench.data.manifest import DatasetInfo, RemoteFile, dataset_info, datasets, register_dataset
from metabench.data.root import cache_dir, data_root
from metabench.envs.mini_imagenet import LoadedImages, decode_images, normalise_root
from metabench.errors import DataError
from metabench.spec import EnvSpec

SUBDIR = "cub"
ARCHIVE = "CUB_200_2011.tgz"
FOLDER = "CUB_200_2011"
ARCHIVE_URL = "https://data.caltech.edu/records/65de6-vzh59/files/CUB_200_2011.tgz"
#: Published md5 of ``CUB_200_2011.tgz``.
ARCHIVE_MD5 = "97eceeb196236b17998738112f37df78"
NUM_CLASSES = 200
IMAGE_SIZE = 84
CACHE_VERSION = 1

CUB = DatasetInfo(
    name="cub",
    subdir=SUBDIR,
    files=(RemoteFile(ARCHIVE, ARCHIVE_URL, md5=ARCHIVE_MD5),),
    instructions=(
        f"Download {ARCHIVE} from {ARCHIVE_URL} and put it, unextracted, in <data root>/cub/ "
        "(or pass download=True to make())."
    ),
    alternatives=(
        "the extracted folder <data root>/cub/CUB_200_2011/ with images/NNN.Class_Name/*.jpg, images.txt, "
        "classes.txt and image_class_labels.txt",
    ),
    prepare_ids=(("", "cub-5w1s"),),
)


def manifest_entry() -> RemoteFile:
    """The archive's manifest entry (registering ``CUB`` on first use; tests may patch ``DATASETS``)."""
    if CUB.name not in datasets():
        register_dataset(CUB)
    return dataset_info(CUB.name).file(ARCHIVE)


def chen_split(num_classes: int = NUM_CLASSES) -> dict[str, np.ndarray]:
    """Chen et al. (2019): of the sorted classes, ``i%2==0`` train, ``i%4==1`` val, ``i%4==3`` test."""
    i = np.arange(num_classes, dtype=np.int32)
    return {"train": i[i % 2 == 0], "val": i[i % 4 == 1], "test": i[i % 4 == 3]}


def _read_table(path: Path, what: str) -> list[tuple[str, str]]:
    """Rows ``(id, value)`` of a whitespace-separated CUB metadata file."""
    if not path.is_file():
        raise DataError(f"{path}: missing; the CUB_200_2011 folder is incomplete ({what}). Extract {ARCHIVE} again")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"{path}, line {lineno}: expected '<id> <{what}>', got {line.strip()!r}")
            rows.append((parts[0], parts[1]))
    return rows


def scan_folder(folder: Path) -> tuple[list[str], list[list[Path]]]:
    """Class names in sorted folder order and each class's image paths (sorted), validated."""
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: missing; {folder} is not an extracted CUB_200_2011 folder")
    names = sorted(d.name for d in images_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(names) != NUM_CLASSES:
        raise DataError(f"{images_dir}: expected {NUM_CLASSES} class folders NNN.Class_Name, found {len(names)}")
    listed = sorted(v for _, v in _read_table(folder / "classes.txt", "class name"))
    if listed != names:
        diff = sorted(set(listed) ^ set(names))[:5]
        raise DataError(f"{folder / 'classes.txt'}: its classes differ from the folders in {images_dir} (e.g. {diff})")
    class_of_id = dict(_read_table(folder / "classes.txt", "class name"))
    image_paths = _read_table(folder / "images.txt", "relative path")
    labels = dict(_read_table(folder / "image_class_labels.txt", "class id"))
    per_class: dict[str, list[Path]] = {n: [] for n in names}
    for image_id, rel in image_paths:
        cls = labels.get(image_id)
        if cls is None:
            raise DataError(f"{folder / 'image_class_labels.txt'}: no class for image {image_id} ({rel})")
        cname = class_of_id.get(cls)
        if cname is None:
            raise DataError(f"{folder / 'image_class_labels.txt'}: image {image_id} has unknown class id {cls}")
        if rel.split("/")[0] != cname:
            raise DataError(f"{folder / 'images.txt'}: image {image_id} ({rel}) is not in the folder of its class {cname}")
        per_class[cname].append(images_dir / rel)
    empty = [n for n in names if not per_class[n]]
    if empty:
        raise DataError(f"{folder / 'images.txt'}: class(es) without images: {', '.join(empty[:5])}")
    return names, [sorted(per_class[n]) for n in names]


def _build_from_folder(folder: Path) -> dict[str, np.ndarray]:
    """``images`` uint8[N, 84, 84, 3], ``counts`` int32[200], ``names`` str[200] (sorted folders)."""
    names, paths = scan_folder(folder)
    missing = [p for ps in paths for p in ps if not p.is_file()]
    if missing:
        raise DataError(f"{folder}: {len(missing)} image(s) listed in images.txt are missing, e.g. {missing[0]}")
    flat = [p for ps in paths for p in ps]
    images = decode_images(flat, IMAGE_SIZE, desc="cub")
    return {
        "images": images,
        "counts": np.asarray([len(p) for p in paths], dtype=np.int32),
        "names": np.asarray(names, dtype=str),
    }


def _build_from_archive(archive: Path) -> dict[str, np.ndarray]:
    rf = manifest_entry()
    verify_file(archive, md5=rf.md5, sha256=rf.sha256, size=rf.size)
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cub-extract.", dir=root))
    try:
        target = safe_extract(archive, tmp / "x")
        folder = target / FOLDER
        if not folder.is_dir():
            raise DataError(f"{archive}: the archive has no top-level {FOLDER}/ folder; is it CUB-200-2011?")
        return _build_from_folder(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def locate(root: str | os.PathLike[str] | None = None, download: bool = False) -> Path:
    """The extracted folder if present, else the archive (downloaded when ``download``)."""
    base = data_root(root) / SUBDIR
    if (base / FOLDER / "images").is_dir():
        return base / FOLDER
    if (base / ARCHIVE).is_file():
        return base / ARCHIVE
    if download:
        rf = manifest_entry()
        if rf.url is None:
            raise DataError(f"{ARCHIVE}: no download address in the manifest; {CUB.instructions}")
        return download_file(rf.url, base / ARCHIVE, md5=rf.md5, sha256=rf.sha256, size=rf.size)
    raise DataError(
        f"CUB-200-2011 not found in {base}: expected {ARCHIVE} (md5 {ARCHIVE_MD5}) or the extracted folder "
        f"{FOLDER}/ (images/NNN.Class_Name/*.jpg, images.txt, classes.txt, image_class_labels.txt). "
        f"Download {ARCHIVE_URL} into {base}/, or pass download=True to make(). The data root is the root= "
        "argument, else $METABENCH_DATA, else the per-user data directory (~/.local/share/metabench)."
    )


def load_cub(root: str | os.PathLike[str] | None = None, download: bool = False) -> LoadedImages:
    """The 200 CUB classes (sorted folder order) and the Chen et al. split, through the cache."""
    manifest_entry()
    source = locate(root, download)
    form = "folder" if source.is_dir() else "archive"
    build = functools.partial(_build_from_folder if form == "folder" else _build_from_archive, source)

    settings: dict[str, Any] = {
        "dataset": "cub",
        "form": form,
        "size": IMAGE_SIZE,
        "resize": "PIL.Image.LANCZOS, no crop",
        "mode": "RGB",
        "version": CACHE_VERSION,
    }
    arrays, info = load_or_build(f"cub-{form}", [source], settings, build)
    names = tuple(str(n) for n in arrays["names"])
    images, counts = arrays["images"], np.asarray(arrays["counts"], dtype=np.int32)
    if len(names) != NUM_CLASSES or counts.shape != (NUM_CLASSES,) or int(counts.sum()) != images.shape[0]:
        raise DataError(f"{info.path}: the CUB cache is inconsistent; delete that directory to rebuild it")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return LoadedImages(ImagePool(images, offsets, counts, names), chen_split(NUM_CLASSES), info.data_hash)


class CUB200(ClassificationEnv):
    """CUB-200-2011 N-way K-shot classification, Chen et al. split (module docstring)."""

    def __init__(
        self,
        spec: EnvSpec,
        *,
        ways: int,
        shots: int,
        queries: int = 15,
        root: str | os.PathLike[str] | None = None,
        download: bool = False,
    ):
        spec, self.root = normalise_root(spec, root)
        self.download = bool(download)
        super().__init__(spec, ways=ways, shots=shots, queries=queries)

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        data = load_cub(self.root, self.download)
        return data.pool, {s: SplitTable.of(c) for s, c in data.classes.items()}, data.data_hash
