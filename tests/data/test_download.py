"""``metabench.data.download`` against a local HTTP server on 127.0.0.1 (random port)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from metabench.data import download
from metabench.errors import ChecksumError, DataError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log: list[tuple[str, str | None]] = []
    cut_once: set[str] = set()

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/zip", length: int | None = None, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802
        rng = self.headers.get("Range")
        type(self).log.append((self.path, rng))
        path = self.path
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if path == "/html":
            self._send(200, b"<!DOCTYPE html><html><body>Quota exceeded</body></html>", ctype="text/html; charset=utf-8")
        elif path == "/html-disguised":
            self._send(200, b"  <html><body>Sign in to continue</body></html>" + b" " * 100, ctype="application/octet-stream")
        elif path == "/truncated":  # announces the full length, sends half, closes
            self._send(200, PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
            self.close_connection = True
        elif path == "/norange":  # ignores Range
            self._send(200, PAYLOAD)
        elif path == "/cut" and path not in type(self).cut_once:  # first transfer dies half-way
            type(self).cut_once.add(path)
            self._send(200, PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
            self.close_connection = True
        elif path in ("/file", "/cut"):
            if rng:
                body = PAYLOAD[start:]
                self._send(206, body, extra={"Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
            else:
                self._send(200, PAYLOAD)
        else:
            self._send(404, b"not found", ctype="text/plain")


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.log = []
    _Handler.cut_once = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_download_success_verifies_and_renames(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "file.zip"
    out = download(f"{server}/file", dest, sha256=SHA, md5=MD5, size=len(PAYLOAD), progress=False)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("file.zip.part").exists()


def test_resume_after_interrupted_transfer(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.zip"
    with pytest.raises(DataError, match="truncated"):
        download(f"{server}/cut", dest, sha256=SHA, progress=False)
    part = tmp_path / "file.zip.part"
    assert part.stat().st_size == len(PAYLOAD) // 2 and not dest.exists()
    download(f"{server}/cut", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.log[-1] == ("/cut", f"bytes={len(PAYLOAD) // 2}-")


def test_server_ignoring_range_restarts(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.zip"
    (tmp_path / "file.zip.part").write_bytes(b"garbage that must not be kept")
    download(f"{server}/norange", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.log[-1][1] is not None  # a Range was asked for, and ignored


def test_checksum_mismatch(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.zip"
    with pytest.raises(ChecksumError, match="sha256 mismatch") as e:
        download(f"{server}/file", dest, sha256="0" * 64, progress=False)
    assert "file.zip" in str(e.value) and SHA in str(e.value)
    assert not dest.exists() and not (tmp_path / "file.zip.part").exists()


@pytest.mark.parametrize("path", ["/html", "/html-disguised"])
def test_html_page_is_refused(server: str, tmp_path: Path, path: str) -> None:
    dest = tmp_path / "file.zip"
    with pytest.raises(DataError, match="HTML"):
        download(f"{server}{path}", dest, progress=False)
    assert not dest.exists() and not (tmp_path / "file.zip.part").exists()


def test_truncated_body_is_refused(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.zip"
    with pytest.raises(DataError, match=f"got {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes"):
        download(f"{server}/truncated", dest, progress=False)
    assert not dest.exists()


def test_size_mismatch_and_http_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="announces"):
        download(f"{server}/file", tmp_path / "a.zip", size=len(PAYLOAD) + 1, progress=False)
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{server}/missing", tmp_path / "b.zip", progress=False)


def test_no_network_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="by hand"):
        download("http://127.0.0.1:9/none.zip", tmp_path / "x.zip", progress=False, timeout=2)
