"""Verified cache loads (``metabench.data.integrity``): every cache file damaged in place at the
same size is detected on load and rebuilt with a warning; opt-out; legacy caches; no sources."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash

from metabench.data import integrity, load_or_build, verify_cache
from metabench.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_helpers import Builder, write_source


def _flip_in_place(path: Path, start: int, n: int) -> None:
    """Invert ``n`` bytes of ``path`` from ``start`` without changing its size or mtime."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(start)
        chunk = f.read(n)
        f.seek(start)
        f.write(bytes(255 - b for b in chunk))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def _edit_meta_value(meta: Path) -> None:
    """Change one hex digit of the recorded data hash: still valid JSON, same size."""
    text = meta.read_text()
    rec = json.loads(text)
    old = rec["data_hash"]
    new = ("0" if old[0] != "0" else "1") + old[1:]
    edited = text.replace(old, new, 1)
    assert len(edited) == len(text) and json.loads(edited)["data_hash"] == new
    meta.write_text(edited)


def _data_offset(npy: Path) -> int:
    """Where the array data starts in a ``.npy`` file (after its header)."""
    return npy.stat().st_size - int(np.load(npy, mmap_mode="r").nbytes)


# every file of the cache directory, damaged in its data, in its header (npy) or in a value (meta)
DAMAGE = ["x.npy:data", "x.npy:last-byte", "x.npy:header", "counts.npy:data", "meta.json:value", "meta.json:created"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_same_size_in_place_damage_of_every_cache_file_is_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    src = write_source(tmp_path)
    clean, info = load_or_build("t", [src], {}, Builder(value=7))
    clean = {k: np.array(v) for k, v in clean.items()}
    files = sorted(p.name for p in info.path.iterdir())
    assert files == ["counts.npy", "meta.json", "x.npy"]  # the test covers every file there is
    name, where = damage.split(":")
    f = info.path / name
    if where == "data":
        _flip_in_place(f, _data_offset(f) + 3, 5)
    elif where == "last-byte":
        _flip_in_place(f, f.stat().st_size - 1, 1)
    elif where == "header":
        # a header that still parses, with the same shape and dtype: only the content hash sees it
        raw = f.read_bytes()
        assert raw.count(b"False") == 1
        f.write_bytes(raw.replace(b"'fortran_order': False", b"'fortran_order': True ", 1))
        assert np.load(f, mmap_mode="r").flags.f_contiguous
    elif where == "value":
        _edit_meta_value(f)
    else:
        text = f.read_text()
        rec = json.loads(text)
        stamp = rec["created"]
        digit = "1" if stamp[3] != "1" else "2"
        f.write_text(text.replace(stamp, stamp[:3] + digit + stamp[4:], 1))
    b = Builder(value=7)
    with caplog.at_level("WARNING", logger="metabench.data"):
        arrays, info2 = load_or_build("t", [src], {}, b)
    assert b.calls == 1 and info2.built, "the damaged cache was loaded instead of rebuilt"
    assert "stale or corrupt" in caplog.text
    for k, v in clean.items():
        np.testing.assert_array_equal(arrays[k], v)
    verify_cache(info2.path)


def test_damage_names_the_file_and_verify_cache_refuses_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, info = load_or_build("t", [write_source(tmp_path)], {}, Builder())
    npy = info.path / "counts.npy"
    _flip_in_place(npy, _data_offset(npy), 4)
    with pytest.raises(DataError, match=r"counts\.npy: content hash mismatch"):
        verify_cache(info.path)
    with caplog.at_level("WARNING", logger="metabench.data"):
        load_or_build("t", [write_source(tmp_path)], {}, Builder())
    assert "counts.npy: content hash mismatch" in caplog.text


@pytest.mark.parametrize("how", ["env", "argument"])
def test_opt_out_loads_without_the_content_check(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_source(tmp_path)
    _, info = load_or_build("t", [src], {}, Builder(value=1))
    npy = info.path / "x.npy"
    _flip_in_place(npy, _data_offset(npy), 1)
    kwargs = {}
    if how == "env":
        monkeypatch.setenv(integrity.VERIFY_ENV, "0")
    else:
        kwargs["verify"] = False
    b = Builder(value=1)
    arrays, info2 = load_or_build("t", [src], {}, b, **kwargs)
    assert b.calls == 0 and not info2.built
    assert int(arrays["x"].reshape(-1)[0]) == 254  # the damage is what the user accepted


def test_corrupt_cache_whose_sources_cannot_be_rebuilt_names_the_file_and_the_command(tmp_path: Path) -> None:
    src = write_source(tmp_path)
    _, info = load_or_build("omniglot-28", [src], {}, Builder())
    npy = info.path / "x.npy"
    _flip_in_place(npy, _data_offset(npy), 2)

    def fails() -> dict[str, np.ndarray]:
        raise DataError("images_background_small1.zip: cannot read")

    with pytest.raises(DataError) as e:
        load_or_build("omniglot-28", [src], {}, fails)
    msg = str(e.value)
    assert str(npy) in msg and "content hash mismatch" in msg and "cannot read" in msg
    assert "metabench data prepare omniglot" in msg


def test_legacy_cache_is_checked_with_sha256_then_sealed(tmp_path: Path) -> None:
    src = write_source(tmp_path)
    _, info = load_or_build("t", [src], {}, Builder())
    meta_path = info.path / "meta.json"
    legacy = json.loads(meta_path.read_text())
    legacy.pop(integrity.RECORD_DIGEST)
    for rec in legacy["arrays"].values():
        rec.pop(integrity.FAST_HASH)
    meta_path.write_text(json.dumps(legacy))
    b = Builder()
    load_or_build("t", [src], {}, b)
    assert b.calls == 0
    assert integrity.is_sealed(json.loads(meta_path.read_text()))
    # a damaged legacy cache is caught by its sha256s
    meta_path.write_text(json.dumps(legacy))
    npy = info.path / "x.npy"
    _flip_in_place(npy, _data_offset(npy), 1)
    load_or_build("t", [src], {}, b)
    assert b.calls == 1


@pytest.mark.parametrize("size", [0, 1, 5, 64, 1000])
def test_fast_digest_is_xxh3_128_of_the_bytes_across_chunk_boundaries(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrity, "_CHUNK", 64)
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert integrity.fast_file_digest(f) == xxhash.xxh3_128(data).hexdigest()


def test_verify_enabled_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(integrity.VERIFY_ENV, raising=False)
    assert integrity.verify_enabled()
    for off in ("0", "false", "OFF", " no "):
        monkeypatch.setenv(integrity.VERIFY_ENV, off)
        assert not integrity.verify_enabled()
    assert integrity.verify_enabled(True)
    monkeypatch.setenv(integrity.VERIFY_ENV, "1")
    assert integrity.verify_enabled() and not integrity.verify_enabled(False)


def test_tuple_settings_and_meta_verify_after_reload(tmp_path: Path) -> None:
    src = write_source(tmp_path)
    settings = {"size": (28, 28), "filter": "bilinear"}
    _, info = load_or_build("t", [src], settings, Builder(), meta={"classes": ("a", "b")})
    b = Builder()
    load_or_build("t", [src], settings, b)
    assert b.calls == 0  # the sealed meta.json verifies as written
    verify_cache(info.path)
