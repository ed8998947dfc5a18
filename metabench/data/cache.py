"""A preprocessed, memory-mappable array cache keyed by source content and settings.

``load_or_build(name, sources, settings, build)`` returns the arrays ``build()`` makes,
storing them once under ``cache_dir()/<name>-<key16>/`` (one ``.npy`` per array plus
``meta.json``) and memory-mapping them on later calls. The key is the sha256 of the
sources' content hashes and the settings, so a changed source or setting gives a new
cache. Hashing a large source on every call would be slow, so each source's hash is
memoised in ``cache_dir()/source-hashes.json`` under its absolute path and a cheap
fingerprint: size, mtime, inode and ctime of the file (of every file, for a directory).
An edit, a ``touch`` or a file renamed into place changes the fingerprint and the source
is hashed again; the memo is trusted only to find an existing cache: before building one,
every source the memo vouched for is hashed again, so ``meta.json`` records true hashes.

Writes go to a temporary directory renamed into place with ``os.replace``: a reader sees
either no cache or a complete one, and concurrent builders do not corrupt each other (the
first rename wins; the others load it). A cache whose ``meta.json`` is missing or
unreadable, or whose arrays do not match the recorded shapes, dtypes and sizes, is
rebuilt with a warning.

Every load also checks the content of every cache file against the digests recorded when
it was built (``metabench.data.integrity``: xxh3-128 of each ``.npy``, a digest of
``meta.json``; about 0.1 s per GB), so a file damaged in place at the same size is rebuilt
with a warning, never sampled from. ``METABENCH_VERIFY_CACHE=0`` or ``verify=False`` skips
that check. A cache built before these digests existed is checked once with its recorded
sha256s and then sealed with them.
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

from metabench.atomic import atomic_write_json
from metabench.data import integrity
from metabench.data.checksum import file_digest
from metabench.data.root import cache_dir
from metabench.debris import clean_stale_dirs
from metabench.errors import DataError

log = logging.getLogger("metabench.data")

#: Environment variable naming a directory for JAX's persistent compilation cache (opt-in).
COMPILE_CACHE_ENV = "METABENCH_COMPILE_CACHE"
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


def _stat_fingerprint(st: os.stat_result) -> str:
    """Size, mtime, inode and ctime of a file: any rewrite, replacement or ``touch`` changes it.

    ``ctime`` cannot be set from user space, so an edit that restores size and mtime (or a
    different file renamed into place) still changes the fingerprint.
    """
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def _walk_files(root: Path) -> list[tuple[str, str, os.stat_result]]:
    """Every file under ``root`` as ``(relative posix path, path, stat)``, in path-parts order.

    The files ``Path.rglob("*")`` + ``is_file()`` list (symlinked files followed, symlinked
    directories not entered), in the order of ``sorted(Path, ...)`` (a depth-first walk with
    each directory's names sorted), via ``os.scandir`` and without ``Path`` objects:
    2.4 s -> under 1 s for 60,000 files on the busy 2-core dev box.
    """
    out: list[tuple[str, str, os.stat_result]] = []

    def visit(folder: str, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=True):
                    if not e.is_symlink():
                        visit(e.path, f"{prefix}{e.name}/")
                elif e.is_file(follow_symlinks=True):
                    out.append((prefix + e.name, e.path, e.stat(follow_symlinks=True)))
            except OSError:  # vanished or unreadable entry: skipped, as rglob does
                continue

    visit(str(root), "")
    return out


def _fingerprint(p: Path) -> tuple[str, list[tuple[str, str]]]:
    """A cheap fingerprint of a file or directory (no content read) and, for a directory, its files."""
    if p.is_dir():
        files = _walk_files(p)
        listing = "".join(f"{rel}\0{_stat_fingerprint(st)}\n" for rel, _, st in files)
        return f"dir:{len(files)}:{hashlib.sha256(listing.encode()).hexdigest()}", [(rel, f) for rel, f, _ in files]
    if p.is_file():
        return f"file:{_stat_fingerprint(p.stat())}", []
    raise DataError(f"{p}: source not found")


def _content_hash(p: Path, files: Sequence[tuple[str, str]]) -> str:
    """sha256 of a file's bytes, or of a directory's ``relative path + file sha256`` lines."""
    if not p.is_dir():
        return file_digest(p)
    h = hashlib.sha256()
    for rel, f in files:
        h.update(f"{rel}\0{file_digest(f)}\n".encode())
    return h.hexdigest()


def _source_hash(p: Path, index: dict[str, Any], *, trust_memo: bool) -> tuple[str, bool]:
    """``(sha256, from_memo)`` of source ``p``; updates ``index`` when it hashes the content."""
    fingerprint, files = _fingerprint(p)
    entry = index.get(str(p))
    if trust_memo and isinstance(entry, dict) and entry.get("fingerprint") == fingerprint and "sha256" in entry:
        return str(entry["sha256"]), True
    digest = _content_hash(p, files)
    index[str(p)] = {"fingerprint": fingerprint, "sha256": digest}
    return digest, False


def source_hash(path: str | os.PathLike[str], *, _index: dict[str, Any] | None = None) -> str:
    """sha256 of a file's bytes, or of a directory's files (relative path + content), memoised.

    The memo (``cache_dir()/source-hashes.json``) is keyed by absolute path and a cheap
    fingerprint: size, mtime, inode and ctime of the file (of every file, for a directory),
    so an edited or replaced source is re-hashed.
    """
    p = Path(path).expanduser().resolve()
    root = cache_dir()
    index = _read_index(root) if _index is None else _index
    digest, from_memo = _source_hash(p, index, trust_memo=True)
    if _index is None and not from_memo:
        _save_index(root, index)
    return digest


def _save_index(root: Path, index: dict[str, Any]) -> None:
    try:
        merged = {**_read_index(root), **index}  # keep entries another process added meanwhile
        atomic_write_json(root / _INDEX, merged, indent=1)
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


def _load(path: Path, data_hash: str, *, verify: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of a complete, consistent cache; raises ``ValueError`` describing what is wrong.

    ``verify``: also check every file's content against the recorded digests
    (``integrity.CorruptCacheError`` on a mismatch).
    """
    try:
        with open(path / "meta.json") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ValueError("meta.json is missing") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"meta.json is unreadable ({e})") from None
    if verify and isinstance(meta, dict) and integrity.RECORD_DIGEST in meta:
        integrity.check_record(path, meta)
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
    if verify:
        if integrity.is_sealed(meta):
            integrity.check_arrays(path, meta)
        else:
            meta = _verify_and_seal_legacy(path, meta, arrays)
    return arrays, meta


def _verify_and_seal_legacy(path: Path, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Check a cache built before the fast digests against its recorded sha256s, then record them."""
    for key, arr in arrays.items():
        rec = meta["arrays"][key]
        if _array_digest(arr) != rec.get("sha256"):
            raise integrity.CorruptCacheError(path / rec["file"], "content hash mismatch with the sha256 recorded when the cache was built")
    sealed = json.loads(json.dumps(meta))
    for rec in sealed["arrays"].values():
        rec[integrity.FAST_HASH] = integrity.fast_file_digest(path / rec["file"])
    integrity.seal(sealed)
    try:
        atomic_write_json(path / "meta.json", sealed, indent=1)
    except OSError as e:  # read-only cache: verified with sha256 again next time
        log.info("cannot record fast digests in %s (%s); it will be checked with sha256 on every load", path, e)
        return meta
    return sealed


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
    verify: bool | None = None,
) -> tuple[dict[str, np.ndarray], CacheInfo]:
    """The arrays of cache ``name`` for these sources and settings, building them if needed.

    Args:
        name: cache family, e.g. ``"omniglot-28"`` (a directory-name-safe string).
        sources: the files (or directories) the arrays are derived from.
        settings: JSON-able preprocessing settings (image size, filter, ...).
        build: returns ``{array name: np.ndarray}``; called only when no valid cache exists.
        meta: extra JSON-able information stored in ``meta.json`` (e.g. class names).
        verify: check an existing cache's content against its recorded digests (default:
            ``$METABENCH_VERIFY_CACHE``, on unless ``0``); a mismatch rebuilds it with a warning.

    Returns:
        ``(arrays, info)``: read-only memory-mapped arrays and a ``CacheInfo``.

    Raises:
        DataError: a source is missing or unreadable, or the disk filled up while writing, or
            a corrupt cache could not be rebuilt (the message names the file and what to run).
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"cache name must be a plain file name, got {name!r}")
    root = cache_dir()
    paths = [Path(s).expanduser().resolve() for s in sources]
    index = _read_index(root)
    hashed = [_source_hash(p, index, trust_memo=True) for p in paths]
    hashes = [h for h, _ in hashed]
    if not all(memo for _, memo in hashed):
        _save_index(root, index)
    dh = data_hash_of(hashes, settings)
    check = integrity.verify_enabled(verify)
    found, problem = _try_load(name, dh, check)
    if found is not None:
        return found
    if any(memo for _, memo in hashed):
        # About to build: hash what the memo vouched for, so the key and meta.json are verified.
        fresh = [h if not memo else _source_hash(p, index, trust_memo=False)[0] for p, (h, memo) in zip(paths, hashed)]
        if fresh != hashes:
            log.warning("source hashes of %s did not match their memo (same size, times and inode); re-hashed", name)
            _save_index(root, index)
            hashes, dh = fresh, data_hash_of(fresh, settings)
            found, problem = _try_load(name, dh, check)
            if found is not None:
                return found
    key = dh[:16]
    final = root / f"{name}-{key}"
    try:
        built = build()
    except DataError as e:
        if problem is None:
            raise
        raise DataError(
            f"{problem}; rebuilding it from the sources failed: {e}\nRestore the sources, then run "
            f"`metabench data prepare {_dataset_of(name)}` (or delete {final} and load the env again)."
        ) from e
    arrays_in = {k: np.ascontiguousarray(v) for k, v in built.items()}
    record = {
        "format": CACHE_FORMAT,
        "name": name,
        "data_hash": dh,
        "settings": dict(settings),
        "sources": [{"path": str(p), "sha256": h} for p, h in zip(paths, hashes)],
        "meta": dict(meta or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arrays": {},
    }
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale_dirs(root)  # what builders killed mid-write left (older than the grace period)
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
                integrity.FAST_HASH: integrity.fast_file_digest(tmp / fname),
            }
        # sealed as it will read back (tuples -> lists, ...), so the digest matches the file
        atomic_write_json(tmp / "meta.json", integrity.seal(json.loads(json.dumps(record))), indent=1)
        _install(tmp, final, dh)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_enospc(e):
            raise DataError(
                f"no space left on device while writing the {name} cache under {root}; free some space "
                f"or point $METABENCH_CACHE at a larger disk"
            ) from e
        raise
    arrays, m = _load(final, dh, verify=False)  # just written here (or verified by _install)
    return arrays, CacheInfo(name, key, dh, final, True, m)


def _dataset_of(cache_name: str) -> str:
    """The dataset whose cache family ``cache_name`` is (for ``metabench data prepare``), else a placeholder."""
    from metabench.data.manifest import DATASETS

    names = [d for d in DATASETS if cache_name == d or cache_name.startswith(f"{d}-")]
    return max(names, key=len) if names else "<dataset or env id>"


def _try_load(
    name: str, data_hash: str, verify: bool
) -> tuple[tuple[dict[str, np.ndarray], CacheInfo] | None, str | None]:
    """``(found, problem)``: the existing cache for ``data_hash``, or ``None`` and, when a cache
    was there but stale or corrupt (warned), what was wrong with it."""
    key = data_hash[:16]
    final = cache_dir() / f"{name}-{key}"
    if not final.exists():
        return None, None
    try:
        arrays, m = _load(final, data_hash, verify=verify)
    except ValueError as e:
        log.warning("cache %s is stale or corrupt (%s); rebuilding it from the sources", final, e)
        where = e.file if isinstance(e, integrity.CorruptCacheError) else final
        return None, f"cache file {where} is stale or corrupt ({e})"
    return (arrays, CacheInfo(name, key, data_hash, final, False, m)), None


def _install(tmp: Path, final: Path, data_hash: str) -> None:
    """Atomically move ``tmp`` to ``final``, replacing a stale ``final``; a valid one (a concurrent
    builder won the race) is kept and ``tmp`` discarded."""
    if final.exists():
        try:
            _load(final, data_hash, verify=True)  # a corrupt final is replaced, not kept
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
    """Check every file's recorded digests (xxh3-128, then sha256) against its content; raises ``DataError``."""
    p = Path(path)
    try:
        meta = json.loads((p / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: meta.json missing or unreadable ({e}); delete the directory to rebuild it") from e
    if not isinstance(meta, dict):
        raise DataError(f"{p}: meta.json holds a JSON {type(meta).__name__}, not an object; "
                        "delete the directory to rebuild it")
    try:
        arrays, meta = _load(p, meta.get("data_hash", ""), verify=True)
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


def compilation_cache_from_env(*, min_compile_secs: float = 0.5) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``$METABENCH_COMPILE_CACHE``, if that is set.

    Called by ``metabench.make``, never at import. Unset or empty: nothing changes and
    ``None`` is returned. A compilation cache directory already configured in JAX (by the
    caller) is left alone. A directory that cannot be created only costs a warning.
    """
    value = os.environ.get(COMPILE_CACHE_ENV, "").strip()
    if not value:
        return None
    import jax

    path = Path(value).expanduser().absolute()
    current = jax.config.jax_compilation_cache_dir
    if current:
        if Path(current).expanduser().absolute() != path:
            log.info("%s=%s ignored: JAX's compilation cache is already set to %s", COMPILE_CACHE_ENV, value, current)
            return None
        return path
    try:
        return enable_compilation_cache(path, min_compile_secs=min_compile_secs)
    except OSError as e:
        log.warning("%s=%s: cannot create that directory (%s); compiling without a persistent cache", COMPILE_CACHE_ENV, value, e)
        return None
