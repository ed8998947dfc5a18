"""Warm-start shortcuts stay correct: the source fingerprint memo, zero-copy pools, the opt-in XLA cache."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

import metabench
from metabench.classification import device_array
from metabench.data import cache as C
from metabench.data import compilation_cache_from_env, load_or_build, source_hash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_helpers import Builder, write_source  # noqa: E402


def _rewrite_keeping_size_and_mtime(path: Path, content: bytes) -> None:
    """Rewrite in place with the same size and mtime; retried until the (coarse) ctime tick moves."""
    st = path.stat()
    assert len(content) == st.st_size
    for _ in range(200):
        path.write_bytes(content)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        if path.stat().st_ctime_ns != st.st_ctime_ns:
            break
        time.sleep(0.01)
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ctime_ns != st.st_ctime_ns


def test_unchanged_sources_are_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, b = write_source(tmp_path), Builder()
    _, first = load_or_build("t", [src], {}, b)
    reads: list[object] = []
    monkeypatch.setattr(C, "file_digest", lambda *a, **k: reads.append(a) or "x")
    _, again = load_or_build("t", [src], {}, b)
    assert reads == [] and not again.built and again.data_hash == first.data_hash and b.calls == 1


def test_edit_keeping_size_and_mtime_is_detected(tmp_path: Path) -> None:
    src = write_source(tmp_path)
    _, first = load_or_build("t", [src], {}, Builder())
    _rewrite_keeping_size_and_mtime(src, b"source v2")  # ctime moves on: the fingerprint changes
    b = Builder(2)
    arrays, second = load_or_build("t", [src], {}, b)
    assert b.calls == 1 and second.built and second.key != first.key and int(arrays["x"][0, 0, 0, 0]) == 2
    assert second.meta["sources"][0]["sha256"] == C.file_digest(src)


def test_replacement_by_rename_with_same_size_and_mtime_is_detected(tmp_path: Path) -> None:
    src = write_source(tmp_path)
    _, first = load_or_build("t", [src], {}, Builder())
    other = tmp_path / "other.bin"
    other.write_bytes(b"source v3")
    st = src.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, src)
    b = Builder(3)
    _, second = load_or_build("t", [src], {}, b)
    assert b.calls == 1 and second.key != first.key


def test_directory_edit_keeping_size_and_mtime_is_detected(tmp_path: Path) -> None:
    d = tmp_path / "images"
    (d / "sub").mkdir(parents=True)
    (d / "a.jpg").write_bytes(b"AAAA")
    (d / "sub" / "b.jpg").write_bytes(b"BBBB")
    h1 = source_hash(d)
    _rewrite_keeping_size_and_mtime(d / "sub" / "b.jpg", b"bbbb")
    h2 = source_hash(d)
    assert h2 != h1
    assert source_hash(d) == h2  # and memoised again


def test_directory_content_hash_is_unchanged_by_the_faster_scan(tmp_path: Path) -> None:
    """The scandir walk lists the same files, in the same order, as the former ``sorted(rglob)``:
    existing caches keep their keys. (Digest recorded with the rglob implementation.)"""
    d = tmp_path / "tree"
    for rel, text in [("a/b.txt", "1"), ("a-c.txt", "2"), ("a/z/y.bin", "3"), ("B.txt", "4"), (".hidden", "5"), ("a0.txt", "6")]:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    (d / "emptydir").mkdir()
    os.symlink(d / "a", d / "link-to-a")  # a symlinked directory is not entered
    os.symlink(d / "B.txt", d / "link-to-B.txt")  # a symlinked file is hashed
    assert source_hash(d) == "a7f3786c57def07aa4e303065eb4faeec7a0456019a9f029cb246caeb319c512"


def test_build_rehashes_a_source_the_memo_vouched_for(tmp_path: Path, _cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = write_source(tmp_path)
    _, first = load_or_build("t", [src], {}, Builder())
    index_path = _cache / C._INDEX
    index = json.loads(index_path.read_text())
    index[str(src.resolve())]["sha256"] = "0" * 64  # a wrong memo with a matching fingerprint
    index_path.write_text(json.dumps(index))
    for p in _cache.iterdir():
        if p.is_dir():
            C.shutil.rmtree(p)
    b = Builder()
    with caplog.at_level("WARNING", logger="metabench.data"):
        _, second = load_or_build("t", [src], {}, b)
    assert b.calls == 1 and second.built and second.data_hash == first.data_hash
    assert second.meta["sources"][0]["sha256"] == C.file_digest(src)
    assert json.loads(index_path.read_text())[str(src.resolve())]["sha256"] == C.file_digest(src)
    assert "did not match their memo" in caplog.text


def test_read_only_memmap_pool_is_not_copied_and_writable_arrays_are(tmp_path: Path) -> None:
    f = tmp_path / "pool.npy"
    np.save(f, np.arange(4096, dtype=np.uint8).reshape(16, 16, 16, 1))
    mm = np.load(f, mmap_mode="r")
    x = device_array(mm)
    np.testing.assert_array_equal(np.asarray(x), mm)
    if jax.default_backend() == "cpu" and mm.ctypes.data % 64 == 0:
        assert x.unsafe_buffer_pointer() == mm.ctypes.data  # aliased: no copy of a large pool
    w = np.zeros((64, 64), np.uint8)
    y = device_array(w)
    w[0, 0] = 7
    assert int(y[0, 0]) == 0  # a writable array is copied: later writes cannot reach the env
    rw = np.load(f, mmap_mode="r+")
    z = device_array(rw)
    rw[0, 0, 0, 0] = 99
    assert int(z[0, 0, 0, 0]) == 0


@pytest.fixture
def _jax_cache_config() -> Iterator[None]:
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    try:
        yield
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
        from jax._src import compilation_cache as cc  # drop a cache opened in tmp_path

        if hasattr(cc, "reset_cache"):
            cc.reset_cache()


@pytest.mark.usefixtures("_jax_cache_config")
def test_compile_cache_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    before = jax.config.jax_compilation_cache_dir
    assert compilation_cache_from_env() is None
    metabench.make("sinusoid-5s")
    assert jax.config.jax_compilation_cache_dir == before


@pytest.mark.usefixtures("_jax_cache_config")
def test_make_turns_on_the_compile_cache_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jax.config.update("jax_compilation_cache_dir", None)
    target = tmp_path / "xla"
    monkeypatch.setenv(C.COMPILE_CACHE_ENV, str(target))
    metabench.make("sinusoid-5s")
    assert target.is_dir() and jax.config.jax_compilation_cache_dir == str(target.absolute())
    assert compilation_cache_from_env() == target.absolute()  # idempotent


@pytest.mark.usefixtures("_jax_cache_config")
def test_compile_cache_set_by_the_caller_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    monkeypatch.setenv(C.COMPILE_CACHE_ENV, str(tmp_path / "env"))
    assert compilation_cache_from_env() is None
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine") and not (tmp_path / "env").exists()


@pytest.mark.usefixtures("_jax_cache_config")
def test_unusable_compile_cache_dir_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    jax.config.update("jax_compilation_cache_dir", None)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(C.COMPILE_CACHE_ENV, str(blocker / "xla"))
    with caplog.at_level("WARNING", logger="metabench.data"):
        assert compilation_cache_from_env() is None
    assert "cannot create" in caplog.text and not jax.config.jax_compilation_cache_dir
