"""Resumable, verified downloads with ``urllib`` (no third-party HTTP client).

``download`` writes ``dest.part``, resumes it with an HTTP ``Range`` request when it exists
(and restarts when the server ignores the range), refuses HTML pages (a quota or error page
served with status 200 is the classic way a "dataset" gets corrupted), refuses truncated
bodies, verifies the checksum and only then renames the file into place.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from metabench.data.checksum import verify_file
from metabench.errors import ChecksumError, DataError

_CHUNK = 1 << 16
_HTML_PREFIXES = (b"<!doctype", b"<html")


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:16].lower().startswith(_HTML_PREFIXES)


def _total_from_headers(resp: object, offset: int) -> int | None:
    headers = resp.headers  # type: ignore[attr-defined]
    cr = headers.get("Content-Range")
    if cr:
        m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", cr)
        if m and m.group(3) != "*":
            return int(m.group(3))
    cl = headers.get("Content-Length")
    if cl is not None and cl.isdigit():
        return offset + int(cl)
    return None


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest``, verified, resuming a previous partial download.

    Returns ``dest``. Raises ``DataError`` on network errors, HTML bodies and truncated
    transfers (the partial file is kept for a later resume only when the transfer was merely
    interrupted), ``ChecksumError`` when the finished file fails its checksum (it is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "metabench"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # range not satisfiable: the .part is stale or complete
            part.unlink(missing_ok=True)
            return download(url, dest, md5=md5, sha256=sha256, size=size, progress=progress, timeout=timeout)
        raise DataError(f"downloading {url}: HTTP {e.code} {e.reason}; check the URL or fetch {dest.name} by hand") from e
    except (urllib.error.URLError, OSError) as e:
        raise DataError(
            f"downloading {url}: {getattr(e, 'reason', e)}. No network? Fetch {dest.name} by hand and put it at {dest}"
        ) from e
    with resp:
        status = getattr(resp, "status", 200)
        if offset and status != 206:  # server ignored the Range header: start again
            offset = 0
        ctype = (resp.headers.get("Content-Type") or "").lower()
        if ctype.startswith("text/html"):
            raise DataError(
                f"downloading {url}: the server sent an HTML page (Content-Type {ctype}), not {dest.name}; "
                "it is probably an error, login or quota page. Open the URL in a browser, or fetch the file by hand."
            )
        total = _total_from_headers(resp, offset)
        if size is not None and total is not None and total != size:
            raise DataError(f"downloading {url}: server announces {total} bytes but {dest.name} has {size} bytes")
        expected = size if size is not None else total
        bar = _progress_bar(dest.name, expected, offset) if progress else None
        received = offset
        first = True
        try:
            with open(part, "ab" if offset else "wb") as f:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except (OSError, ValueError, http.client.HTTPException) as e:  # reset / incomplete read
                        f.flush()
                        raise DataError(
                            f"downloading {url}: connection lost after {received} bytes ({e}); "
                            f"call download again to resume from {part}"
                        ) from e
                    if not chunk:
                        break
                    if first and offset == 0 and _looks_like_html(chunk):
                        f.close()
                        part.unlink(missing_ok=True)
                        raise DataError(
                            f"downloading {url}: the body is an HTML page, not {dest.name}; it is probably an "
                            "error, login or quota page. Open the URL in a browser, or fetch the file by hand."
                        )
                    first = False
                    f.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
    if expected is not None and received != expected:
        raise DataError(
            f"downloading {url}: truncated: got {received} of {expected} bytes; "
            f"call download again to resume from {part}"
        )
    try:
        verify_file(part, md5=md5, sha256=sha256, size=size)
    except ChecksumError as e:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"downloaded {url}: {e}") from e
    os.replace(part, dest)
    return dest


def _progress_bar(name: str, total: int | None, initial: int):  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)
