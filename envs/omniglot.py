"""Omniglot few-shot classification (Lake et al. 2015; Vinyals et al. 2016; Snell et al. 2017).

**Description.** N-way K-shot classification of handwritten characters: 1623 characters
from 50 alphabets, 20 drawings each (Lake et al., Science 2015).

**Data.** The original zips under ``data_root(root)/omniglot/`` (``root=`` argument, else
``$METABENCH_DATA``, else ``~/.local/share/metabench``): ``images_background.zip`` and
``images_evaluation.zip`` (the full dataset; needed by the "vinyals" and "lake" schemes) or
``images_background_small1.zip`` and ``images_background_small2.zip`` (the "lite" scheme).
Already-extracted folders of the same names are accepted too. Layout
``<zipstem>/<Alphabet>/characterNN/<id>_<drawer>.png`` (105x105, 1-bit, black strokes on
white). PNGs are read straight out of the zip, converted to 8-bit grey, resized to
``image_size`` with PIL's ``BILINEAR`` filter (with PIL's antialiasing on downscaling, as
torchvision's ``Resize`` on PIL images) and inverted (``255 - x``) so strokes are bright.
They are stored once as ``uint8[N, S, S, 1]`` grouped by character, in a memory-mapped cache
(``metabench.data.cache``) keyed by the zips' content and these settings; the env's
``spec.data_hash`` records that key. Zips are checked against the published checksums
(``metabench.data.manifest``) when the cache is built (``verify=False`` skips that, e.g. for
re-compressed zips).

**Task distribution.** ``ways`` classes drawn without replacement from the split, then
``shots + queries`` distinct drawings per class (``ClassificationEnv``); support
``(float32[ways*shots, S, S, 1] in [0, 1], int32[ways*shots])``, query likewise with
``queries`` per class; labels ``0..ways-1`` class-major in a random class order.

**Splits** (``split_scheme``):

- ``"vinyals"`` (default): the Vinyals et al. split as published with Prototypical Networks:
  1028/172/423 characters for train/val/test, by alphabet except Gurmukhi (characters 1-41
  train, 42-45 test); each character in each of the four rotations 0/90/180/270 degrees is
  its own class (4112/688/1692 classes); every image of a class is rotated by that class's
  rotation (``np.rot90``, counter-clockwise). Encoded in ``metabench.envs.omniglot_splits``.
- ``"lake"``: Lake et al.'s background/evaluation division, no rotation classes: train = the
  background set minus 5 held-out alphabets, val = those 5 (every sixth background alphabet in
  sorted order: Balinese, Early_Aramaic, Inuktitut, Mkhedruli, Tifinagh; 158 characters),
  test = the evaluation set (659 characters).
- ``"lite"``: the small subsets (8 alphabets; Greek and Latin appear identically in both zips
  and are deduplicated), by alphabet, with rotation classes: train = Japanese_(katakana),
  Korean, Sanskrit, Balinese (153 characters, 612 classes); val = Early_Aramaic (22, 88);
  test = Greek, Latin, Tagalog (67, 268).

**Version history.** v0: initial.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.data.cache import CacheInfo, load_or_build
from metabench.data.checksum import verify_file
from metabench.data.manifest import dataset_info
from metabench.data.root import DATA_ENV, data_root
from metabench.envs import omniglot_splits as S
from metabench.errors import ConfigError, DataError
from metabench.spec import EnvSpec

#: Zip stems used by each split scheme.
SCHEME_SOURCES: Mapping[str, tuple[str, ...]] = {
    "vinyals": ("images_background", "images_evaluation"),
    "lake": ("images_background", "images_evaluation"),
    "lite": ("images_background_small1", "images_background_small2"),
}
#: Manifest variant of each scheme (``metabench.data.manifest.OMNIGLOT``).
SCHEME_VARIANT = {"vinyals": "full", "lake": "full", "lite": "lite"}
#: Preprocessing settings recorded in the cache key (bump ``version`` on any change).
RESIZE_FILTER = "bilinear"
PREPROCESS_VERSION = 1


class Omniglot(ClassificationEnv):
    """Omniglot N-way K-shot; see the module docstring for data, splits and shapes."""

    def __init__(
        self,
        spec: EnvSpec,
        *,
        ways: int,
        shots: int,
        queries: int = 15,
        split_scheme: str = "vinyals",
        root: str | os.PathLike[str] | None = None,
        image_size: int = 28,
        download: bool = False,
        verify: bool = True,
    ):
        if split_scheme not in SCHEME_SOURCES:
            from metabench.registry import did_you_mean

            raise ConfigError(
                f"{spec.id}: unknown split_scheme {split_scheme!r}.{did_you_mean(split_scheme, list(SCHEME_SOURCES))} "
                f"Schemes: {', '.join(SCHEME_SOURCES)}."
            )
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not 4 <= image_size <= 105:
            raise ConfigError(f"{spec.id}: image_size must be an integer in [4, 105], got {image_size!r}")
        self.split_scheme = split_scheme
        self.image_size = int(image_size)
        self.data_dir = data_root(root) / dataset_info("omniglot").subdir
        self._root = root
        self._download = bool(download)
        self._verify = bool(verify)
        self.cache_info: CacheInfo | None = None
        super().__init__(spec, ways=ways, shots=shots, queries=queries)

    # -- data ---------------------------------------------------------------------------
    def _sources(self) -> list[Path]:
        """The zip (or extracted folder) of every stem the scheme needs; one DataError if any is missing."""
        stems = SCHEME_SOURCES[self.split_scheme]
        found, missing = _locate(self.data_dir, stems)
        if missing and self._download:
            from metabench.data.status import fetch

            fetch("omniglot", SCHEME_VARIANT[self.split_scheme], root=self._root)
            found, missing = _locate(self.data_dir, stems)
        if missing:
            need = " and ".join(f"{s}.zip" for s in stems)
            raise DataError(
                f"{self.spec.id} (split_scheme={self.split_scheme!r}) needs {need} in {self.data_dir}/; "
                f"missing: {', '.join(f'{s}.zip' for s in missing)} (an extracted folder {missing[0]}/ works too). "
                f"Put the files there, or point ${DATA_ENV} (or root=) at the directory that contains omniglot/, "
                f"or pass download=True with network. Get them from "
                f"https://github.com/brendenlake/omniglot/tree/master/python."
            )
        return found

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        sources = self._sources()
        settings = {
            "image_size": self.image_size,
            "filter": RESIZE_FILTER,
            "invert": True,
            "layout": "NHWC uint8, grouped by character",
            "version": PREPROCESS_VERSION,
        }
        build = _builder(sources, self.image_size, self._verify)
        arrays, info = load_or_build(f"omniglot-{self.image_size}", sources, settings, build)
        self.cache_info = info
        names = tuple(arrays["names"].tolist())
        pool = _pool(arrays["images"], arrays["counts"], names)
        tables = _split_tables(self.split_scheme, names, self.spec.id)
        return pool, tables, info.data_hash


def _locate(base: Path, stems: Sequence[str]) -> tuple[list[Path], list[str]]:
    found, missing = [], []
    for stem in stems:
        z, d = base / f"{stem}.zip", base / stem
        if z.is_file():
            found.append(z)
        elif d.is_dir():
            found.append(d)
        else:
            missing.append(stem)
    return found, missing


def _pool(images: np.ndarray, counts: np.ndarray, names: tuple[str, ...]) -> ImagePool:
    counts = np.asarray(counts, dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return ImagePool(images, offsets, counts, names)


# -- reading the zips / folders ---------------------------------------------------------

Reader = Callable[[], bytes]


def _members(source: Path, stack: contextlib.ExitStack) -> dict[str, list[tuple[str, Reader, str]]]:
    """``{"Alphabet/characterNN": [(file name, read bytes, display name), ...]}`` of one source
    (a zip is opened on ``stack`` and closed with it)."""
    out: dict[str, list[tuple[str, Reader, str]]] = {}
    stem = source.name[:-4] if source.suffix == ".zip" else source.name

    def add(rel: str, reader: Reader, display: str) -> None:
        parts = PurePosixPath(rel).parts
        if parts and parts[0] == stem:
            parts = parts[1:]
        if len(parts) != 3 or not parts[2].lower().endswith(".png") or not parts[1].startswith("character"):
            return
        out.setdefault(f"{parts[0]}/{parts[1]}", []).append((parts[2], reader, display))

    if source.is_dir():
        for f in source.rglob("*.png"):
            add(f.relative_to(source).as_posix(), f.read_bytes, str(f))
        return out
    try:
        zf = stack.enter_context(zipfile.ZipFile(source))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{source}: not a readable zip ({e}); delete it and download it again") from e
    for info in zf.infolist():
        if not info.is_dir():
            add(info.filename, (lambda z=zf, n=info.filename: z.read(n)), f"{source}:{info.filename}")
    return out


def decode_image(data: bytes, size: int, where: str) -> np.ndarray:
    """PNG bytes -> ``uint8[size, size]``: 8-bit grey, BILINEAR resize, inverted (strokes bright)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise DataError(f"{where}: unreadable image ({type(e).__name__}: {e}); the archive is corrupt, download it again") from e
    return 255 - arr


def _builder(sources: Sequence[Path], size: int, verify: bool) -> Callable[[], dict[str, np.ndarray]]:
    def build() -> dict[str, np.ndarray]:
        if verify:
            _verify_sources(sources)
        with contextlib.ExitStack() as stack:
            return _decode_all(sources, size, stack)

    return build


def _decode_all(sources: Sequence[Path], size: int, stack: contextlib.ExitStack) -> dict[str, np.ndarray]:
    """Every character's PNGs, decoded: ``images`` uint8[N, size, size, 1], ``counts``, ``names`` (sorted)."""
    chars: dict[str, list[tuple[str, Reader, str]]] = {}
    for src in sources:  # a character present in an earlier source wins (small1/small2 share Greek, Latin)
        for name, files in _members(src, stack).items():
            chars.setdefault(name, files)
    if not chars:
        raise DataError(
            f"no Omniglot images (<Alphabet>/characterNN/*.png) found in {', '.join(map(str, sources))}"
        )
    names = sorted(chars)
    total = sum(len(v) for v in chars.values())
    images = np.empty((total, size, size, 1), dtype=np.uint8)
    counts = np.empty(len(names), dtype=np.int32)
    from tqdm.auto import tqdm

    i = 0
    with tqdm(total=total, desc="omniglot: decoding images", unit="img", leave=False) as bar:
        for c, name in enumerate(names):
            files = sorted(chars[name], key=lambda t: t[0])
            counts[c] = len(files)
            for _, read, where in files:
                try:
                    data = read()
                except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                    raise DataError(f"{where}: cannot read ({e}); the archive is corrupt, download it again") from e
                images[i, :, :, 0] = decode_image(data, size, where)
                i += 1
                bar.update()
    return {"images": images, "counts": counts, "names": np.array(names)}


def _verify_sources(sources: Sequence[Path]) -> None:
    info = dataset_info("omniglot")
    for src in sources:
        if src.is_file():
            try:
                rf = info.file(src.name)
            except KeyError:
                continue
            verify_file(src, md5=rf.md5, sha256=rf.sha256, size=rf.size)


# -- splits -------------------------------------------------------------------------------


def _split_tables(scheme: str, names: Sequence[str], env_id: str) -> dict[str, SplitTable]:
    index = {n: i for i, n in enumerate(names)}
    by_alphabet: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_alphabet.setdefault(n.split("/")[0], []).append(i)

    def alphabets(alphas: Sequence[str]) -> list[int]:
        absent = [a for a in alphas if a not in by_alphabet]
        if absent:
            raise DataError(
                f"{env_id}: the Omniglot data has no alphabet {', '.join(absent)}; the zips are incomplete "
                f"or of another version (alphabets found: {', '.join(sorted(by_alphabet))})"
            )
        return [i for a in alphas for i in by_alphabet[a]]

    if scheme == "vinyals":
        tables = {}
        for split in ("train", "val", "test"):
            wanted = S.vinyals_characters(split)
            absent = [c for c in wanted if c not in index]
            if absent:
                raise DataError(
                    f"{env_id}: the Omniglot data lacks {len(absent)} characters of the Vinyals {split} split "
                    f"(e.g. {', '.join(absent[:3])}); it needs the full images_background.zip and images_evaluation.zip"
                )
            tables[split] = SplitTable.of([index[c] for c in wanted], S.ROTATIONS)
        return tables
    if scheme == "lake":
        train = [a for a in S.BACKGROUND_ALPHABETS if a not in S.LAKE_VAL_ALPHABETS]
        return {
            "train": SplitTable.of(alphabets(train)),
            "val": SplitTable.of(alphabets(S.LAKE_VAL_ALPHABETS)),
            "test": SplitTable.of(alphabets(S.EVALUATION_ALPHABETS)),
        }
    return {split: SplitTable.of(alphabets(S.LITE[split]), S.ROTATIONS) for split in ("train", "val", "test")}


def describe_data(env: Omniglot) -> dict[str, Any]:
    """Where the env's data came from: directory, cache path, data hash."""
    ci = env.cache_info
    return {
        "data_dir": str(env.data_dir),
        "cache": str(ci.path) if ci and ci.path else None,
        "data_hash": env.spec.data_hash,
    }
