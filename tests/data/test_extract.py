"""``safe_extract``: members escaping the target are refused and nothing is extracted."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from metabench.data import safe_extract
from metabench.errors import DataError, UnsafeArchiveError


def _zip(path: Path, members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _assert_nothing_extracted(tmp_path: Path, target: Path) -> None:
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_zip_extracts_into_target(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", [("top/a.txt", b"A"), ("top/sub/b.txt", b"B")], {"top/link": "sub/b.txt"})
    out = safe_extract(z, tmp_path / "out" / "a")
    assert (out / "top" / "a.txt").read_bytes() == b"A" and (out / "top" / "sub" / "b.txt").read_bytes() == b"B"
    assert (out / "top" / "link").is_symlink()


def test_tar_extracts_into_target(tmp_path: Path) -> None:
    t = _tar(tmp_path / "a.tar.gz", [("top/a.txt", b"A"), _link("top/l", "a.txt"), _link("top/h", "top/a.txt", tarfile.LNKTYPE)])
    out = safe_extract(t, tmp_path / "out")
    assert (out / "top" / "a.txt").read_bytes() == b"A" and (out / "top" / "h").read_bytes() == b"A"


@pytest.mark.parametrize(
    "members, links, what",
    [
        ([("ok.txt", b"x"), ("../evil", b"x")], None, "../evil"),
        ([("ok.txt", b"x"), ("a/../../evil", b"x")], None, "a/../../evil"),
        ([("ok.txt", b"x"), ("/tmp/evil", b"x")], None, "/tmp/evil"),
        ([("ok.txt", b"x")], {"link": "../../evil"}, "link"),
        ([("ok.txt", b"x")], {"link": "/etc/passwd"}, "link"),
        ([("ok.txt", b"x")], {"d": ".", "e": "d/d/d/.."}, "e"),  # a chain that a textual check misses
    ],
)
def test_zip_unsafe_members_are_refused(tmp_path: Path, members, links, what: str) -> None:
    z = _zip(tmp_path / "bad.zip", members, links)
    target = tmp_path / "out" / "bad"
    with pytest.raises(UnsafeArchiveError) as e:
        safe_extract(z, target)
    assert repr(what) in str(e.value) and "bad.zip" in str(e.value)
    _assert_nothing_extracted(tmp_path, target)


@pytest.mark.parametrize(
    "members, what",
    [
        ([("ok.txt", b"x"), ("../evil", b"x")], "../evil"),
        ([("ok.txt", b"x"), ("/abs/evil", b"x")], "/abs/evil"),
        ([("ok.txt", b"x"), _link("sub/link", "../../evil")], "sub/link"),
        ([("ok.txt", b"x"), _link("link", "/etc/passwd")], "link"),
        ([("ok.txt", b"x"), _link("hard", "../evil", tarfile.LNKTYPE)], "../evil"),
        ([("ok.txt", b"x"), _link("dev", "", tarfile.CHRTYPE)], "dev"),
    ],
)
def test_tar_unsafe_members_are_refused(tmp_path: Path, members, what: str) -> None:
    t = _tar(tmp_path / "bad.tar.gz", members)
    target = tmp_path / "out" / "bad"
    with pytest.raises(UnsafeArchiveError) as e:
        safe_extract(t, target)
    assert repr(what) in str(e.value)
    _assert_nothing_extracted(tmp_path, target)


def test_corrupt_archives_are_data_errors(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", [("a.txt", b"A" * 100_000)])
    (tmp_path / "trunc.zip").write_bytes(z.read_bytes()[:2000])
    with pytest.raises(DataError, match="trunc.zip"):
        safe_extract(tmp_path / "trunc.zip", tmp_path / "o1")
    t = _tar(tmp_path / "a.tar.gz", [("a.bin", bytes(range(256)) * 4000)])
    (tmp_path / "trunc.tar.gz").write_bytes(t.read_bytes()[: t.stat().st_size // 2])
    with pytest.raises(DataError, match="trunc.tar.gz"):
        safe_extract(tmp_path / "trunc.tar.gz", tmp_path / "o2")
    (tmp_path / "page.zip").write_bytes(b"<!DOCTYPE html><html></html>")
    with pytest.raises(DataError, match="not a zip or tar"):
        safe_extract(tmp_path / "page.zip", tmp_path / "o3")
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
