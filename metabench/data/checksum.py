"""File digests and verification against published checksums."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from metabench.errors import ChecksumError, DataError

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str], algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (``algo``: any ``hashlib`` name)."""
    h = hashlib.new(algo)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    return h.hexdigest()


def verify_file(
    path: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
) -> None:
    """Check ``path`` against the given size and digests; raise ``ChecksumError`` on a mismatch."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    advice = (
        "The file is corrupt, truncated or a different version: delete it and download it again "
        "(or run `metabench data status` to see what each dataset expects)."
    )
    if size is not None:
        actual = p.stat().st_size
        if actual != size:
            raise ChecksumError(f"{p}: size mismatch: expected {size} bytes, got {actual}. {advice}")
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual_digest = file_digest(p, algo)
        if actual_digest.lower() != expected.lower():
            raise ChecksumError(
                f"{p}: {algo} mismatch: expected {expected.lower()}, got {actual_digest}. {advice}"
            )
