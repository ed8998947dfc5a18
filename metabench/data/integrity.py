"""Content verification of cache files: a fast hash recorded at build time, checked at every load.

Every file of a cache directory is covered: each ``.npy`` by the xxh3-128 of all its bytes
(header and data) recorded in ``meta.json``, and ``meta.json`` itself by ``record_digest``, the
sha256 of its canonical JSON without that field. xxh3-128 is not cryptographic: it guards
against bit flips, half-synced copies and in-place edits, not against an attacker who can
also rewrite ``meta.json`` (nothing on the local disk could). It was chosen by throughput
(``benchmarks/bench_cache_verify.py``: xxh3-128 18.5 GB/s, blake3 5.7, sha256 1.4,
blake2b 0.9 on the 2-core dev box), so a verified load costs about 0.07 s per GB from the
page cache (a cold cache also pays the disk read of its files).

Set ``METABENCH_VERIFY_CACHE=0`` (or pass ``verify=False`` to ``load_or_build``) to skip the
content check and accept the risk; the cheap size, shape and dtype checks always run.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xxhash

#: Name of the fast file hash; the key of each array's digest in ``meta.json``.
FAST_HASH = "xxh3_128"
#: Key of ``meta.json``'s own digest.
RECORD_DIGEST = "record_digest"
#: Environment variable: ``0`` / ``false`` / ``no`` / ``off`` turns content verification off.
VERIFY_ENV = "METABENCH_VERIFY_CACHE"

_CHUNK = 64 << 20
_OFF = {"0", "false", "no", "off"}


class CorruptCacheError(ValueError):
    """A cache file whose content differs from what was recorded when the cache was built."""

    def __init__(self, file: Path, reason: str):
        super().__init__(f"{file.name}: {reason}")
        self.file = file


def verify_enabled(flag: bool | None = None) -> bool:
    """``flag`` if given, else ``$METABENCH_VERIFY_CACHE`` (default on)."""
    if flag is not None:
        return bool(flag)
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in _OFF


def fast_file_digest(path: str | os.PathLike[str]) -> str:
    """xxh3-128 (hex) of every byte of a file, read through ``mmap`` in 64 MiB slices."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return h.hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                for start in range(0, size, _CHUNK):
                    h.update(view[start : start + _CHUNK])
            finally:
                view.release()
    return h.hexdigest()


def record_digest(record: Mapping[str, Any]) -> str:
    """sha256 of ``record`` as canonical JSON (sorted keys), without its ``record_digest`` field."""
    body = {k: v for k, v in record.items() if k != RECORD_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its ``record_digest`` set (in place); returns it."""
    record[RECORD_DIGEST] = record_digest(record)
    return record


def is_sealed(meta: Mapping[str, Any]) -> bool:
    """Whether ``meta`` carries the digests of this module (caches built before it do not)."""
    arrays = meta.get("arrays", {})
    return RECORD_DIGEST in meta and all(isinstance(r, dict) and FAST_HASH in r for r in arrays.values())


def check_record(path: Path, meta: Mapping[str, Any]) -> None:
    """Raise ``CorruptCacheError`` if ``meta.json`` was changed after it was sealed."""
    if meta.get(RECORD_DIGEST) != record_digest(meta):
        raise CorruptCacheError(path / "meta.json", "content hash mismatch: it differs from its recorded digest (edited or damaged)")


def check_arrays(path: Path, meta: Mapping[str, Any]) -> None:
    """Raise ``CorruptCacheError`` naming the first ``.npy`` whose bytes differ from the recorded xxh3-128."""
    for rec in meta.get("arrays", {}).values():
        f = path / rec["file"]
        if fast_file_digest(f) != rec[FAST_HASH]:
            raise CorruptCacheError(
                f, f"content hash mismatch: its {FAST_HASH} differs from the one recorded when the cache was built (damaged on disk)"
            )
