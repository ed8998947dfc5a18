"""data_root / cache_dir resolution, checksums, the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from metabench.data import (
    DATASETS,
    DatasetInfo,
    RemoteFile,
    cache_dir,
    data_root,
    dataset_info,
    file_digest,
    register_dataset,
    verify_file,
)
from metabench.errors import ChecksumError, DataError, RegistrationError, UnknownIdError


def test_data_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("METABENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "metabench"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".local" / "share" / "metabench"
    monkeypatch.setenv("METABENCH_DATA", "~/d")
    assert data_root() == tmp_path / "home" / "d"
    assert data_root("~/explicit") == tmp_path / "home" / "explicit"
    assert data_root(tmp_path) == tmp_path


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("METABENCH_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("METABENCH_DATA", str(tmp_path / "data"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "metabench"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    assert cache_dir() == tmp_path / "xc" / "metabench"
    monkeypatch.setenv("METABENCH_CACHE", "~/c")
    assert cache_dir() == tmp_path / "home" / "c"
    assert not str(cache_dir()).startswith(str(data_root()))


def test_file_digest_and_verify(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = b"abc" * 1_000_000  # several chunks
    p.write_bytes(data)
    assert file_digest(p) == hashlib.sha256(data).hexdigest()
    assert file_digest(p, "md5") == hashlib.md5(data).hexdigest()
    verify_file(p, md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest().upper(), size=len(data))
    with pytest.raises(ChecksumError) as e:
        verify_file(p, md5="0" * 32)
    msg = str(e.value)
    assert str(p) in msg and "0" * 32 in msg and hashlib.md5(data).hexdigest() in msg and "download it again" in msg
    with pytest.raises(ChecksumError, match="size mismatch: expected 1 bytes"):
        verify_file(p, size=1)
    with pytest.raises(DataError, match="not found"):
        verify_file(tmp_path / "nope")


def test_omniglot_manifest() -> None:
    info = dataset_info("omniglot")
    assert info.subdir == "omniglot"
    assert info.file("images_background.zip").md5 == "68d2efa1b9178cc56df9314c21c6e718"
    assert info.file("images_evaluation.zip").md5 == "6b91aef0f799c5bb55b94e3f2daec811"
    assert info.file("images_background_small1.zip").sha256.startswith("f38eb80f")
    for f in info.files:
        assert f.url.startswith("https://raw.githubusercontent.com/brendenlake/omniglot/") and f.url.endswith(f.name)
    assert set(info.variant_files()) == {"full", "lite"}
    with pytest.raises(UnknownIdError, match="omniglot"):
        dataset_info("omniglott")


def test_register_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("metabench.data.manifest.DATASETS", dict(DATASETS))
    from metabench.data import manifest as M

    info = DatasetInfo("toy", "toy", (RemoteFile("a.zip", None, None, None, None),), "put a.zip there")
    assert M.register_dataset(info) is info and M.dataset_info("toy") is info
    assert M.register_dataset(info) is info  # identical re-registration is fine
    with pytest.raises(RegistrationError):
        M.register_dataset(DatasetInfo("toy", "other", ()))
    M.register_dataset(DatasetInfo("toy", "other", ()), override=True)
    assert M.dataset_info("toy").subdir == "other"
    assert register_dataset is M.register_dataset
