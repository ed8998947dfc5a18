"""A preprocessed, memory-mappable array cache keyed by source content and settings.

``load_or_build(name, sources, settings, build)`` returns the arrays ``build()`` makes,
storing them once under ``cache_dir()/<name>-<key16>/`` (one ``.npy`` per array plus
``meta.json``) and memory-mapping them on later calls. The key is the sha256 of the
sources' content hashes and the settings, so a changed source or setting gives a new
cache. Hashing a large source on every call would be slow, so each source's hash is
memoised by ``(absolute path, size, mtime_ns)`` in ``cache_dir()/source-hashes.json``.

Writes go to a temporary directory renamed into place with ``os.replace``: a reader sees
either no cache or a complete one, and concurrent builders do not corrupt each other (the
first rename wins; the others load it). A cache whose ``meta.json`` is missing or
unreadable, or whose arrays do not match the recorded shapes, dtypes and sizes, is
rebuilt with a warning.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metabench.data.checksum import file_digest
from metabench.data.root import cache_dir
from metabench.errors import DataError

log = logging.getLogger("metabench.data")

#: Bumped whenever the on-disk layout changes; part of every key.
CACHE_FORMAT = 1
_INDEX = "source-hashes.json"


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """Where a cache lives and what it was built from.

    ``data_hash``: sha256 over the sources' content hashes and the settings (record it in
    the env spec); ``built``: whether this call built the cache (False: loaded);
    ``path``: the cache directory, or ``None`` when the cache directory was not writable and
    the arrays live only in memory; ``meta``: the contents of ``meta.json``.
    """

    name: str
    key: str
    data_hash: str
    path: Path | None
    built: bool
    meta: Mapping[str, Any]


# -- source hashing --------------------------------------------------------------------


def _read_index(root: Path) -> dict[str, Any]:
    try:
        with open(root / _INDEX) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_fingerprint(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def source_hash(path: str | os.PathLike[str], *, _index: dict[str, Any] | None = None) -> str:
    """sha256 of a file's bytes, or of a directory's files (relative path + content), memoised.

    The memo key is ``(absolute path, size, mtime_ns)`` (for a directory: a digest of every
    file's relative path, size and mtime_ns), so an edited source is re-hashed.
    """
    p = Path(path).expanduser().resolve()
    root = cache_dir()
    index = _read_index(root) if _index is None else _index
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        fp = hashlib.sha256()
        for f in files:
            size, mtime = _file_fingerprint(f)
            fp.update(f"{f.relative_to(p).as_posix()}\0{size}\0{mtime}\n".encode())
        memo = {"size": len(files), "mtime_ns": fp.hexdigest()}
    elif p.is_file():
        size, mtime = _file_fingerprint(p)
        memo = {"size": size, "mtime_ns": mtime}
        files = []
    else:
        raise DataError(f"{p}: source not found")
    entry = index.get(str(p))
    if isinstance(entry, dict) and entry.get("size") == memo["size"] and entry.get("mtime_ns") == memo["mtime_ns"]:
        return str(entry["sha256"])
    if p.is_dir():
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.relative_to(p).as_posix()}\0{file_digest(f)}\n".encode())
        digest = h.hexdigest()
    else:
        digest = file_digest(p)
    index[str(p)] = {**memo, "sha256": digest}
    if _index is None:
        _save_index(root, index)
    return digest


def _save_index(root: Path, index: dict[str, Any]) -> None:
    try:
        merged = {**_read_index(root), **index}  # keep entries another process added meanwhile
        _write_json_atomic(root / _INDEX, merged)
    except OSError as e:  # a read-only cache dir only costs re-hashing next time
        log.warning("cannot update the source-hash index in %s (%s); sources will be re-hashed next time", root, e)


def data_hash_of(source_hashes: Sequence[str], settings: Mapping[str, Any]) -> str:
    """sha256 over the sources' content hashes and the preprocessing settings."""
    blob = json.dumps(
        {"format": CACHE_FORMAT, "sources": list(source_hashes), "settings": settings},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# -- load / build ----------------------------------------------------------------------


def _load(path: Path, data_hash: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of a complete, consistent cache; raises ``ValueError`` describing what is wrong."""
    try:
        with open(path / "meta.json") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ValueError("meta.json is missing") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"meta.json is unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("data_hash") != data_hash:
        raise ValueError("meta.json does not describe this cache")
    arrays: dict[str, np.ndarray] = {}
    for key, rec in meta.get("arrays", {}).items():
        f = path / rec["file"]
        if not f.is_file():
            raise ValueError(f"{rec['file']} is missing")
        if f.stat().st_size != rec["file_size"]:
            raise ValueError(f"{rec['file']} has {f.stat().st_size} bytes, expected {rec['file_size']}")
        try:
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{rec['file']} is unreadable ({e})") from None
        if list(arr.shape) != rec["shape"] or arr.dtype.str != rec["dtype"]:
            raise ValueError(f"{rec['file']} is {arr.dtype.str}{list(arr.shape)}, expected {rec['dtype']}{rec['shape']}")
        arrays[key] = arr
    return arrays, meta


def _array_digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).reshape(-1).view(np.uint8)).hexdigest()


def _is_enospc(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def load_or_build(
    name: str,
    sources: Sequence[str | os.PathLike[str]],
    settings: Mapping[str, Any],
    build: Callable[[], Mapping[str, np.ndarray]],
    *,
    meta: Mapping[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], CacheInfo]:
    """The arrays of cache ``name`` for these sources and settings, building them if needed.

    Args:
        name: cache family, e.g. ``"omniglot-28"`` (a directory-name-safe string).
        sources: the files (or directories) the arrays are derived from.
        settings: JSON-able preprocessing settings (image size, filter, ...).
        build: returns ``{array name: np.ndarray}``; called only when no valid cache exists.
        meta: extra JSON-able information stored in ``meta.json`` (e.g. class names).

    Returns:
        ``(arrays, info)``: read-only memory-mapped arrays and a ``CacheInfo``.

    Raises:
        DataError: a source is missing or unreadable, or the disk filled up while writing.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"cache name must be a plain file name, got {name!r}")
    root = cache_dir()
    index = _read_index(root)
    before = dict(index)
    hashes = [source_hash(s, _index=index) for s in sources]
    if index != before:
        _save_index(root, index)
    dh = data_hash_of(hashes, settings)
    key = dh[:16]
    final = root / f"{name}-{key}"
    if final.exists():
        try:
            arrays, m = _load(final, dh)
            return arrays, CacheInfo(name, key, dh, final, False, m)
        except ValueError as e:
            log.warning("cache %s is stale or corrupt (%s); rebuilding it", final, e)
    arrays_in = {k: np.ascontiguousarray(v) for k, v in build().items()}
    record = {
        "format": CACHE_FORMAT,
        "name": name,
        "data_hash": dh,
        "settings": dict(settings),
        "sources": [{"path": str(Path(s).expanduser().resolve()), "sha256": h} for s, h in zip(sources, hashes)],
        "meta": dict(meta or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arrays": {},
    }
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}.", suffix=".tmp", dir=root))
    except OSError as e:
        log.warning("cache directory %s is not writable (%s); keeping %s in memory only", root, e, name)
        return arrays_in, CacheInfo(name, key, dh, None, True, record)
    try:
        for k, arr in arrays_in.items():
            fname = f"{k}.npy"
            with open(tmp / fname, "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            record["arrays"][k] = {
                "file": fname,
                "shape": list(arr.shape),
                "dtype": arr.dtype.str,
                "nbytes": int(arr.nbytes),
                "file_size": (tmp / fname).stat().st_size,
                "sha256": _array_digest(arr),
            }
        _write_json_atomic(tmp / "meta.json", record)
        _install(tmp, final, dh)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_enospc(e):
            raise DataError(
                f"no space left on device while writing the {name} cache under {root}; free some space "
                f"or point $METABENCH_CACHE at a larger disk"
            ) from e
        raise
    arrays, m = _load(final, dh)
    return arrays, CacheInfo(name, key, dh, final, True, m)


def _install(tmp: Path, final: Path, data_hash: str) -> None:
    """Atomically move ``tmp`` to ``final``, replacing a stale ``final``; a valid one (a concurrent
    builder won the race) is kept and ``tmp`` discarded."""
    if final.exists():
        try:
            _load(final, data_hash)
            shutil.rmtree(tmp, ignore_errors=True)
            return
        except ValueError:
            pass
        trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".stale", dir=final.parent))
        try:
            os.replace(final, trash / "old")
        except FileNotFoundError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and final.exists():  # another builder won the race
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise


def verify_cache(path: str | os.PathLike[str]) -> None:
    """Recompute every array's sha256 and compare with ``meta.json``; raises ``DataError``."""
    p = Path(path)
    try:
        meta = json.loads((p / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: meta.json missing or unreadable ({e}); delete the directory to rebuild it") from e
    try:
        arrays, _ = _load(p, meta.get("data_hash", ""))
    except ValueError as e:
        raise DataError(f"{p}: {e}; delete the directory to rebuild it") from e
    for k, arr in arrays.items():
        if _array_digest(arr) != meta["arrays"][k]["sha256"]:
            raise DataError(f"{p / meta['arrays'][k]['file']}: content hash mismatch; delete {p} to rebuild it")


def enable_compilation_cache(directory: str | os.PathLike[str] | None = None, *, min_compile_secs: float = 0.5) -> Path:
    """Turn on JAX's persistent compilation cache in ``directory`` (default ``cache_dir()/xla``).

    Compiling a task sampler takes seconds on a small CPU; with this cache a later process
    loads the compiled sampler instead (measured on the 2-core dev box: first
    ``sample_task`` after a warm ``make`` 3.6 s -> 0.65 s). Global JAX configuration: call it
    explicitly (CLI, harness, scripts); importing metabench never does. Returns the directory.
    """
    import jax

    path = Path(directory).expanduser() if directory is not None else cache_dir() / "xla"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
    return path
