"""Safe archive extraction for zip and tar(.gz/.bz2/.xz).

Every member must land inside the target: no absolute paths, no ``..`` components, no
links pointing outside, no device files or FIFOs. Members are checked before anything is
written; extraction goes into a temporary directory next to the target, renamed into
place at the end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from metabench.errors import DataError, UnsafeArchiveError


def _check_name(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or ``UnsafeArchiveError``."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if p.is_absolute() or norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would escape the target directory ('..'); refusing to extract")
    return p


def _check_link(archive: Path, name: str, link_target: str, *, hard: bool) -> None:
    base = PurePosixPath(name.replace("\\", "/")).parent
    t = link_target.replace("\\", "/")
    if t.startswith("/"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} links to absolute path {link_target!r}; refusing to extract")
    # hard links are relative to the archive root, symlinks to the member's directory
    parts = list(PurePosixPath(t).parts) if hard else list(base.parts) + list(PurePosixPath(t).parts)
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise UnsafeArchiveError(
                    f"{archive}: member {name!r} links outside the target ({link_target!r}); refusing to extract"
                )
        elif part not in ("", "."):
            depth += 1


def _make_links(archive: Path, tmp: Path, links: list[tuple[str, Path, str]]) -> None:
    """Create symlinks after every regular member (nothing is ever written through one), then check
    that each resolves inside ``tmp`` (catches chains such as ``d -> .`` plus ``e -> d/d/..``)."""
    for _, out, target in links:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, out)
    root = tmp.resolve()
    for name, out, target in links:
        resolved = Path(os.path.realpath(out))
        if resolved != root and root not in resolved.parents:
            raise UnsafeArchiveError(f"{archive}: member {name!r} links outside the target ({target!r}); refusing to extract")


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Extract ``archive`` (zip or tar) so that its contents become ``target``; returns ``target``.

    Raises ``UnsafeArchiveError`` naming the offending member (nothing is extracted),
    ``DataError`` for a corrupt or truncated archive or an existing non-empty ``target``.
    """
    archive = Path(archive)
    target = Path(target)
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    if target.exists() and any(target.iterdir()):
        raise DataError(f"{target} already exists and is not empty; remove it to extract {archive.name} again")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        elif _is_tar(archive):
            _extract_tar(archive, tmp)
        else:
            raise DataError(f"{archive}: not a zip or tar archive (corrupt, truncated or an HTML page?); download it again")
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _extract_zip(archive: Path, tmp: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_name(archive, info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    _check_link(archive, info.filename, zf.read(info).decode("utf-8", "replace"), hard=False)
                elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix type recorded
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a special file; refusing to extract")
            links: list[tuple[str, Path, str]] = []
            for info in infos:
                rel = _check_name(archive, info.filename)
                out = tmp.joinpath(*rel.parts)
                mode = info.external_attr >> 16
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                if stat.S_ISLNK(mode):
                    links.append((info.filename, out, zf.read(info).decode("utf-8")))
                    continue
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            _make_links(archive, tmp, links)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
        raise DataError(f"{archive}: corrupt or truncated zip ({e}); delete it and download it again") from e
    except OSError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{archive}: extracting failed ({e})") from e


def _extract_tar(archive: Path, tmp: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_name(archive, m.name)
                if m.issym():
                    _check_link(archive, m.name, m.linkname, hard=False)
                elif m.islnk():
                    _check_name(archive, m.linkname)
                    _check_link(archive, m.name, m.linkname, hard=True)
                elif not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(
                        f"{archive}: member {m.name!r} is a device file or FIFO; refusing to extract"
                    )
            links: list[tuple[str, Path, str]] = []
            for m in members:
                rel = _check_name(archive, m.name)
                out = tmp.joinpath(*rel.parts)
                if m.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                elif m.issym():
                    links.append((m.name, out, m.linkname))
                elif m.islnk():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    os.link(tmp.joinpath(*_check_name(archive, m.linkname).parts), out)
                else:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    if src is None:
                        raise DataError(f"{archive}: cannot read member {m.name!r}")
                    with src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    os.chmod(out, 0o644 | (m.mode & 0o111))
            _make_links(archive, tmp, links)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: corrupt or truncated tar archive ({e}); delete it and download it again") from e
    except OSError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{archive}: extracting failed ({e})") from e
