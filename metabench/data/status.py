"""``metabench data status`` / ``metabench data prepare``: what is on disk, and building caches.

``dataset_status`` checks every registered dataset (each variant separately, e.g. Omniglot
"full" and "lite") against its manifest: ``found``, ``missing`` or ``corrupt`` (size or
checksum mismatch, an archive that does not open). ``prepare`` builds an env's
preprocessed cache ahead of time so the first ``make()`` is fast.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from metabench.data.checksum import file_digest
from metabench.data.manifest import DATASETS, DatasetInfo, RemoteFile
from metabench.data.root import DATA_ENV, data_root
from metabench.errors import DataError, UnknownIdError

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")


@dataclasses.dataclass(frozen=True)
class DatasetStatus:
    """One row of ``metabench data status``: a dataset (variant) and its state.

    ``state``: ``"found"``, ``"missing"`` or ``"corrupt"``; ``detail`` says what was checked
    or what to do.
    """

    name: str
    state: str
    path: Path
    detail: str
    variant: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}[{self.variant}]" if self.variant else self.name


def extracted_dir(path: Path) -> Path:
    """The folder an archive extracts to by convention: ``x.zip`` -> ``x``, ``x.tar.gz`` -> ``x``."""
    for suf in _ARCHIVE_SUFFIXES:
        if path.name.endswith(suf):
            return path.with_name(path.name[: -len(suf)])
    return path


def check_file(path: Path, rf: RemoteFile, *, checksums: bool = True) -> tuple[str, str]:
    """``(state, detail)`` of one manifest file at ``path`` (or its extracted folder)."""
    if not path.exists():
        folder = extracted_dir(path)
        if folder != path and folder.is_dir() and any(folder.iterdir()):
            return "found", f"{folder.name}/ (extracted folder)"
        return "missing", f"{rf.name} not found"
    if not path.is_file():
        return "corrupt", f"{path} is not a file"
    size = path.stat().st_size
    if rf.size is not None and size != rf.size:
        return "corrupt", f"{rf.name}: {size} bytes, expected {rf.size}; delete it and download it again"
    if checksums:
        for algo, expected in (("md5", rf.md5), ("sha256", rf.sha256)):
            if expected and file_digest(path, algo) != expected.lower():
                return "corrupt", f"{rf.name}: {algo} mismatch; delete it and download it again"
    name = path.name
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path):
                pass
        elif any(name.endswith(s) for s in _ARCHIVE_SUFFIXES):
            with tarfile.open(path) as tf:
                tf.next()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        return "corrupt", f"{rf.name}: archive does not open ({e}); delete it and download it again"
    return "found", f"{rf.name} ({size} bytes{', checksum ok' if checksums and (rf.md5 or rf.sha256) else ''})"


def _status_of(info: DatasetInfo, root: Path, checksums: bool) -> list[DatasetStatus]:
    base = root / info.subdir
    rows = []
    for variant, files in info.variant_files().items():
        results = [(rf, *check_file(base / rf.name, rf, checksums=checksums)) for rf in files]
        corrupt = [d for _, s, d in results if s == "corrupt"]
        missing = [rf.name for rf, s, _ in results if s == "missing"]
        if corrupt:
            state, detail = "corrupt", "; ".join(corrupt)
        elif missing:
            state = "missing"
            detail = f"put {', '.join(missing)} in {base}" + (
                f" (or, with network, `metabench data prepare {info.name} --download`)" if all(rf.url for rf in files) else ""
            )
        else:
            state, detail = "found", "; ".join(d for _, _, d in results)
        rows.append(DatasetStatus(info.name, state, base, detail, variant))
    return rows


def discover_datasets() -> list[str]:
    """Register the ``DatasetInfo`` objects that image env modules define at module level.

    Env modules register their dataset lazily (on first use), so a status listing imports the
    module of every registered classification env (imports touch no data) and registers any
    module-level ``DatasetInfo`` not yet in ``DATASETS``. Returns the names added.
    """
    import importlib

    import metabench

    added: list[str] = []
    modules = sorted(
        {s.entry_point.partition(":")[0] for s in metabench.registry.values()
         if s.kind == "classification" and isinstance(s.entry_point, str)}
    )
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, DatasetInfo) and value.name not in DATASETS:
                DATASETS[value.name] = value
                added.append(value.name)
    return added


def dataset_status(root: str | os.PathLike[str] | None = None, *, checksums: bool = True) -> list[DatasetStatus]:
    """The state of every dataset (variant) under ``data_root(root)`` (see ``discover_datasets``)."""
    discover_datasets()
    r = data_root(root)
    rows: list[DatasetStatus] = []
    for name in sorted(DATASETS):
        rows.extend(_status_of(DATASETS[name], r, checksums))
    return rows


def format_status(rows: list[DatasetStatus]) -> str:
    """A plain-text table of ``dataset_status`` rows."""
    headers = ("dataset", "state", "path", "detail")
    table = [(r.label, r.state, str(r.path), r.detail) for r in rows]
    widths = [max([len(h)] + [len(t[i]) for t in table]) for i, h in enumerate(headers[:3])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:3], widths)) + "  " + headers[3]]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    for t in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(t[:3], widths)) + "  " + t[3])
    lines.append(f"(data root: the root argument, else ${DATA_ENV}, else ~/.local/share/metabench)")
    return "\n".join(lines)


def fetch(name: str, variant: str | None = None, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Download the missing files of dataset ``name`` (one variant, or all), verified; returns their paths."""
    from metabench.data.download import download
    from metabench.data.manifest import dataset_info

    info = dataset_info(name)
    base = data_root(root) / info.subdir
    out = []
    for v, files in info.variant_files().items():
        if variant is not None and v != variant:
            continue
        for rf in files:
            dest = base / rf.name
            if check_file(dest, rf, checksums=False)[0] == "found":
                continue
            if rf.url is None:
                raise DataError(f"{rf.name} cannot be downloaded automatically. {info.instructions}")
            out.append(download(rf.url, dest, md5=rf.md5, sha256=rf.sha256, size=rf.size))
    return out


def prepare(
    name_or_env_id: str, root: str | os.PathLike[str] | None = None, *, download: bool = False
) -> list[dict[str, Any]]:
    """Build the preprocessed cache of a dataset (every variant found on disk) or of one env id.

    With ``download=True`` a dataset's missing files are fetched first (``fetch``).
    Returns one ``{"env_id", "data_hash"}`` record per env built. Raises ``DataError`` when a
    dataset has no variant on disk (the message names the files and where to put them).
    """
    import metabench

    kwargs: dict[str, Any] = {} if root is None else {"root": root}
    discover_datasets()
    if name_or_env_id in DATASETS:
        info = DATASETS[name_or_env_id]
        if download:
            fetch(info.name, root=root)
        rows = {r.variant: r for r in _status_of(info, data_root(root), checksums=False)}
        ids = [env_id for variant, env_id in info.prepare_ids if rows.get(variant) and rows[variant].state == "found"]
        if not ids:
            details = "; ".join(f"{r.label}: {r.state}: {r.detail}" for r in rows.values())
            raise DataError(f"cannot prepare {info.name}: no usable variant on disk ({details}). {info.instructions}")
    else:
        try:
            metabench.spec(name_or_env_id)
        except UnknownIdError as e:
            raise UnknownIdError(
                f"{name_or_env_id!r} is neither a dataset ({', '.join(sorted(DATASETS))}) nor an env id: {e}"
            ) from None
        ids = [name_or_env_id]
        if download:
            kwargs["download"] = True
    out = []
    for env_id in ids:
        env = metabench.make(env_id, **kwargs)
        out.append({"env_id": env.spec.id, "data_hash": env.spec.data_hash})
    return out
