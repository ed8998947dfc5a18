"""``load_or_build``: keyed by content + settings, memory-mapped, rebuilt when stale or corrupt, atomic."""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from metabench.data import cache as C
from metabench.data import load_or_build, source_hash, verify_cache
from metabench.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_helpers import Builder, write_source  # noqa: E402


def _leftovers(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir() if p.name.startswith(".")]


def test_build_then_load_memory_mapped(tmp_path: Path, _cache: Path) -> None:
    src, b = write_source(tmp_path), Builder()
    arrays, info = load_or_build("t", [src], {"size": 4}, b, meta={"names": ["a"]})
    assert info.built and b.calls == 1 and info.path == _cache / f"t-{info.key}" and len(info.key) == 16
    arrays2, info2 = load_or_build("t", [src], {"size": 4}, b)
    assert not info2.built and b.calls == 1 and info2.data_hash == info.data_hash
    assert isinstance(arrays2["x"], np.memmap) and not arrays2["x"].flags.writeable
    np.testing.assert_array_equal(arrays2["x"], arrays["x"])
    meta = json.loads((info.path / "meta.json").read_text())
    assert meta["meta"] == {"names": ["a"]} and meta["settings"] == {"size": 4}
    assert meta["arrays"]["x"]["shape"] == [10, 4, 4, 1] and meta["arrays"]["x"]["dtype"] == "|u1"
    assert meta["sources"][0]["sha256"] == source_hash(src)
    verify_cache(info.path)
    assert _leftovers(_cache) == []


def test_settings_and_source_content_change_the_key(tmp_path: Path) -> None:
    src = write_source(tmp_path)
    _, a = load_or_build("t", [src], {"size": 4}, Builder())
    _, b = load_or_build("t", [src], {"size": 5}, Builder())
    assert a.key != b.key
    st = src.stat()
    src.write_bytes(b"source v2")  # same size
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    builder = Builder(2)
    arrays, c = load_or_build("t", [src], {"size": 4}, builder)
    assert builder.calls == 1 and c.key != a.key and int(arrays["x"][0, 0, 0, 0]) == 2


def test_source_hash_is_memoised_by_path_size_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_source(tmp_path)
    h = source_hash(src)
    calls = []
    monkeypatch.setattr(C, "file_digest", lambda *a, **k: calls.append(a) or "x")
    assert source_hash(src) == h and calls == []  # memo hit: not re-read
    os.utime(src, ns=(0, 12345))
    assert source_hash(src) == "x" and len(calls) == 1


def test_directory_sources(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    (d / "a").mkdir(parents=True)
    (d / "a" / "f.txt").write_text("1")
    h1 = source_hash(d)
    (d / "a" / "g.txt").write_text("2")
    assert source_hash(d) != h1


@pytest.mark.parametrize("damage", ["truncate_npy", "delete_meta", "garble_meta", "delete_npy"])
def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    src = write_source(tmp_path)
    _, info = load_or_build("t", [src], {}, Builder())
    npy, meta = info.path / "x.npy", info.path / "meta.json"
    if damage == "truncate_npy":
        npy.write_bytes(npy.read_bytes()[:-50])
    elif damage == "delete_meta":
        meta.unlink()
    elif damage == "garble_meta":
        meta.write_text("{not json")
    else:
        npy.unlink()
    b = Builder()
    with caplog.at_level("WARNING", logger="metabench.data"):
        arrays, info2 = load_or_build("t", [src], {}, b)
    assert b.calls == 1 and info2.built and info2.path == info.path
    assert "stale or corrupt" in caplog.text
    assert arrays["x"].shape == (10, 4, 4, 1)
    verify_cache(info2.path)
    assert _leftovers(info.path.parent) == []


@pytest.mark.parametrize("meta", ["[1, 2]", "null", '"text"'])
def test_verify_cache_names_a_meta_json_that_is_not_an_object(tmp_path: Path, meta: str) -> None:
    _, info = load_or_build("t", [write_source(tmp_path)], {}, Builder())
    (info.path / "meta.json").write_text(meta)
    with pytest.raises(DataError, match="meta.json holds a JSON .*, not an object; delete the directory"):
        verify_cache(info.path)


def test_verify_cache_detects_changed_content(tmp_path: Path) -> None:
    _, info = load_or_build("t", [write_source(tmp_path)], {}, Builder())
    npy = info.path / "x.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.raises(DataError, match="content hash mismatch"):
        verify_cache(info.path)


def test_disk_full_cleans_up_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _cache: Path) -> None:
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C.np, "save", full)
    with pytest.raises(DataError, match="no space left on device"):
        load_or_build("t", [write_source(tmp_path)], {}, Builder())
    assert [p.name for p in _cache.iterdir() if p.name != C._INDEX] == []


def test_build_failure_leaves_nothing(tmp_path: Path, _cache: Path) -> None:
    def broken() -> dict[str, np.ndarray]:
        raise DataError("bad source")

    with pytest.raises(DataError, match="bad source"):
        load_or_build("t", [write_source(tmp_path)], {}, broken)
    assert [p.name for p in _cache.iterdir() if p.name != C._INDEX] == []


def test_missing_source_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_or_build("t", [tmp_path / "nope.zip"], {}, Builder())


def test_concurrent_builders_do_not_corrupt_each_other(tmp_path: Path, _cache: Path) -> None:
    src = write_source(tmp_path)
    barrier = threading.Barrier(3)
    results, errors, builds = [], [], []

    def build() -> dict[str, np.ndarray]:
        barrier.wait(timeout=10)  # all three build before any installs
        builds.append(1)
        return Builder()()

    def worker() -> None:
        try:
            results.append(load_or_build("t", [src], {}, build))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == [] and len(results) == 3 and len(builds) == 3
    assert sorted(r[1].built for r in results) == [True, True, True]
    assert len({r[1].path for r in results}) == 1
    dirs = [p.name for p in _cache.iterdir() if p.is_dir()]
    assert dirs == [results[0][1].path.name]
    for arrays, _ in results:
        np.testing.assert_array_equal(arrays["x"], np.ones((10, 4, 4, 1), np.uint8))
    verify_cache(results[0][1].path)


def test_read_only_cache_dir_falls_back_to_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("METABENCH_CACHE", str(blocker / "cache"))
    arrays, info = load_or_build("t", [write_source(tmp_path)], {}, Builder())
    assert info.path is None and arrays["x"].shape == (10, 4, 4, 1)


def test_bad_name() -> None:
    with pytest.raises(ValueError):
        load_or_build("../x", [], {}, Builder())


def test_enable_compilation_cache_sets_jax_config(tmp_path: Path, _cache: Path) -> None:
    import jax

    from metabench.data import enable_compilation_cache

    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    try:
        path = enable_compilation_cache(min_compile_secs=2.0)
        assert path == _cache / "xla" and path.is_dir()
        assert jax.config.jax_compilation_cache_dir == str(path)
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 2.0
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
