"""Small image datasets in exactly the published formats, for tests without the real data.

miniImageNet: split CSVs + ``images/`` JPEG folder; the pickle caches in the Python-3 layout
(any protocol) and in a genuine Python-2 layout (protocol 2, ``str`` written as Python-2
byte strings, numpy's Python-2 array reduction); a malicious pickle. CUB-200-2011: the
extracted folder, the ``.tgz`` and a truncated ``.tgz``.

Pixels encode the class so tests can tell where a sampled image came from:
``class_colour(c)`` fills the image (robust to JPEG and resizing: decode with
``colour_class``); pickle images also carry the exact class index in pixel ``[0, 0, 0]``
and the image index in ``[0, 0, 1]``.

Tests are not a package: load this module by path, e.g.
``importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "fixtures_images.py")``.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


def ravi_classes(n_per_split: Mapping[str, int] | None = None) -> dict[str, list[str]]:
    """The project's Ravi wnid lists (optionally only the first ``n`` of each split)."""
    from metabench.envs.mini_imagenet_splits import RAVI_SPLIT

    return {s: list(RAVI_SPLIT[s][: (n_per_split or {}).get(s)]) for s in SPLITS}


def synthetic_classes(counts: Mapping[str, int] = {"train": 64, "val": 16, "test": 20}) -> dict[str, list[str]]:  # noqa: B006
    """Made-up wnids (``n9xxxxxxx``) that are not in the Ravi split."""
    out, k = {}, 0
    for s in SPLITS:
        out[s] = [f"n9{k + i:07d}" for i in range(counts[s])]
        k += counts[s]
    return out


def class_colour(c: int) -> tuple[int, int, int]:
    """A flat RGB colour for global class index ``c < 512``; channels step by 32."""
    return (16 + 32 * (c % 8), 16 + 32 * ((c // 8) % 8), 16 + 32 * (c // 64))


def colour_class(pixel: Sequence[float]) -> int:
    """Inverse of ``class_colour`` for a (possibly JPEG-blurred) pixel in [0, 255] or [0, 1]."""
    p = np.asarray(pixel, dtype=np.float64)
    if p.max() <= 1.0:
        p = p * 255.0
    r, g, b = (int(np.clip(np.rint((v - 16) / 32), 0, 7)) for v in p[:3])
    return r + 8 * g + 64 * b


def class_image(c: int, i: int, size: tuple[int, int] = (84, 84), mode: str = "RGB") -> np.ndarray:
    """uint8[H, W, 3] (or [H, W] for mode "L") filled with the colour of class ``c`` (``i`` is unused)."""
    h, w = size
    if mode == "L":
        return np.full((h, w), class_colour(c)[0], dtype=np.uint8)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = class_colour(c)
    return img


# -- miniImageNet -----------------------------------------------------------------------------


def jpeg_bytes(arr: np.ndarray) -> bytes:
    """``arr`` (uint8 [H, W, 3] or [H, W]) encoded as a JPEG (quality 95)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def mini_imagenet_csv(
    root: str | os.PathLike[str],
    *,
    per_class: int = 20,
    size: int = 84,
    classes: Mapping[str, Sequence[str]] | None = None,
    nested: bool = False,
) -> Path:
    """Write ``<root>/mini-imagenet/{train,val,test}.csv`` and ``images/`` (JPEGs ``size`` x ``size``).

    Class ``c`` (global index in train, val, test order) has ``per_class`` images named like
    the published ones (``<wnid><8 digits>.jpg``). ``nested``: ``images/<wnid>/<file>``.
    """
    classes = classes or ravi_classes()
    folder = Path(root) / "mini-imagenet"
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    c = 0
    for s in SPLITS:
        lines = ["filename,label"]
        for wnid in classes[s]:
            data = jpeg_bytes(class_image(c, 0, (size, size)))
            for i in range(per_class):
                name = f"{wnid}{i + 1:08d}.jpg"
                _write(images / wnid / name if nested else images / name, data)
                lines.append(f"{name},{wnid}")
            c += 1
        (folder / f"{s}.csv").write_text("\n".join(lines) + "\n")
    return folder


def mini_imagenet_arrays(
    per_class: int = 20, classes: Mapping[str, Sequence[str]] | None = None, shuffle: bool = True
) -> dict[str, dict[str, Any]]:
    """``{split: {"image_data": uint8[N,84,84,3], "class_dict": {wnid: [indices]}}}``.

    Class ``c`` (global index) images hold ``c`` in pixel [0,0,0] and the image index in
    [0,0,1]. ``shuffle``: rows interleaved (class_dict indices not contiguous).
    """
    classes = classes or ravi_classes()
    rng = np.random.default_rng(0)
    out, c = {}, 0
    for s in SPLITS:
        n = per_class * len(classes[s])
        rows = rng.permutation(n) if shuffle else np.arange(n)
        data = np.empty((n, 84, 84, 3), dtype=np.uint8)
        class_dict: dict[str, list[int]] = {}
        for j, wnid in enumerate(classes[s]):
            idx = sorted(int(r) for r in rows[j * per_class : (j + 1) * per_class])
            class_dict[wnid] = idx
            for i, r in enumerate(idx):
                data[r] = class_image(c, i)
                data[r, 0, 0, 0], data[r, 0, 0, 1] = c, i
            c += 1
        out[s] = {"image_data": data, "class_dict": class_dict}
    return out


def pickle_name(split: str, val_name: str = "val") -> str:
    return f"mini-imagenet-cache-{val_name if split == 'val' else split}.pkl"


def mini_imagenet_pickles(
    root: str | os.PathLike[str],
    *,
    per_class: int = 20,
    style: str = "py3",
    protocol: int = pickle.HIGHEST_PROTOCOL,
    val_name: str = "val",
    classes: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write ``<root>/mini-imagenet/mini-imagenet-cache-{train,val|validation,test}.pkl``.

    ``style="py3"``: ``pickle.dump`` at ``protocol``; ``style="py2"``: a Python-2 pickle
    (see ``dump_py2``).
    """
    folder = Path(root) / "mini-imagenet"
    folder.mkdir(parents=True, exist_ok=True)
    for s, obj in mini_imagenet_arrays(per_class, classes).items():
        with open(folder / pickle_name(s, val_name), "wb") as f:
            if style == "py2":
                dump_py2(obj, f)
            else:
                pickle.dump(obj, f, protocol=protocol)
    return folder


class _Global:
    """A reference to ``module.name`` written as a GLOBAL opcode (no import needed)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self) -> None:  # save_reduce requires a callable
        raise TypeError


class _Py2Dtype:
    def __init__(self, dt: np.dtype):
        self.dt = dt

    def __reduce__(self) -> Any:
        order = b"|" if self.dt.itemsize == 1 else b"<"
        return (_Global("numpy", "dtype"), (self.dt.str[1:].encode(), 0, 1), (3, order, None, None, None, -1, -1, 0))


class _Py2Array:
    """numpy's Python-2 array reduction: ``_reconstruct(ndarray, (0,), 'b')`` + state with a byte string."""

    def __init__(self, arr: np.ndarray):
        self.arr = np.ascontiguousarray(arr)

    def __reduce__(self) -> Any:
        state = (1, tuple(int(s) for s in self.arr.shape), _Py2Dtype(self.arr.dtype), False, self.arr.tobytes())
        return (_Global("numpy.core.multiarray", "_reconstruct"), (_Global("numpy", "ndarray"), (0,), b"b"), state)


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Protocol 2 as Python 2 wrote it: ``bytes`` become Python-2 ``str`` (BINSTRING opcodes)."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_global_ref(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[bytes] = save_py2_str
    dispatch[_Global] = save_global_ref


def _py2ify(obj: Any) -> Any:
    """str -> Python-2 byte strings, numpy arrays -> Python-2 array reductions, recursively."""
    if isinstance(obj, str):
        return obj.encode("latin1")
    if isinstance(obj, np.ndarray):
        return _Py2Array(obj)
    if isinstance(obj, dict):
        return {_py2ify(k): _py2ify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2ify(v) for v in obj]
    return obj


def dump_py2(obj: Any, f: Any) -> None:
    """Write ``obj`` as Python 2's ``cPickle.dump(obj, f, 2)`` would have."""
    _Py2Pickler(f, protocol=2).dump(_py2ify(obj))


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def malicious_pickle(path: str | os.PathLike[str], marker: str | os.PathLike[str]) -> Path:
    """A cache-shaped pickle whose ``image_data`` runs ``os.system("touch <marker>")`` when loaded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"image_data": _Evil(Path(marker)), "class_dict": {}}, f, protocol=2)
    return path


# -- CUB-200-2011 --------------------------------------------------------------------------------


def cub_class_names(n: int = 200) -> list[str]:
    """``NNN.Bird_NNN`` folder names (sorted order = index order)."""
    return [f"{i + 1:03d}.Bird_{i + 1:03d}" for i in range(n)]


def cub_folder(
    root: str | os.PathLike[str],
    *,
    per_class: int | Sequence[int] = 4,
    size: tuple[int, int] = (18, 24),
    grayscale_every: int = 7,
) -> Path:
    """Write ``<root>/cub/CUB_200_2011/`` (images/, images.txt, classes.txt, image_class_labels.txt).

    Images are ``size`` (H, W) JPEGs in the class colour of the folder index; every
    ``grayscale_every``-th class is a grayscale JPEG (as a few real CUB images are).
    """
    folder = Path(root) / "cub" / "CUB_200_2011"
    names = cub_class_names()
    counts = [per_class] * len(names) if isinstance(per_class, int) else list(per_class)
    images_txt, labels_txt, image_id = [], [], 1
    for c, name in enumerate(names):
        mode = "L" if grayscale_every and c % grayscale_every == 3 else "RGB"
        data = jpeg_bytes(class_image(c, 0, size, mode))
        for i in range(counts[c]):
            rel = f"{name}/{name.split('.')[1]}_{i + 1:04d}_{image_id}.jpg"
            _write(folder / "images" / rel, data)
            images_txt.append(f"{image_id} {rel}")
            labels_txt.append(f"{image_id} {c + 1}")
            image_id += 1
    (folder / "images.txt").write_text("\n".join(images_txt) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels_txt) + "\n")
    (folder / "classes.txt").write_text("\n".join(f"{c + 1} {n}" for c, n in enumerate(names)) + "\n")
    return folder


def cub_tarball(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Pack an extracted ``CUB_200_2011`` folder as the published ``CUB_200_2011.tgz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder, arcname="CUB_200_2011")
        info = tarfile.TarInfo("attributes.txt")  # the real archive has it at the top level too
        data = b"1 has_bill_shape::curved_(up_or_down)\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def truncate(src: str | os.PathLike[str], dest: str | os.PathLike[str], fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src`` to ``dest`` (an interrupted download)."""
    data = Path(src).read_bytes()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest
