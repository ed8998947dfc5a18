"""The result store: one validated JSON file per run, written atomically.

File name: ``<env>__<learner>__<confighash8>__s<seed>.json`` (the record's ``name``).
Concurrent writers never collide on temp files, and a reader sees either the old or
the new complete file. Reading validates every file and reports the bad ones by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from metabench.errors import MetabenchError
from metabench.atomic import atomic_write_text
from metabench.leaderboard.memo import CACHE_DIR, Memo, digest
from metabench.leaderboard.schema import schema_errors


class ResultError(MetabenchError):
    """A result record or file that does not match ``leaderboard/schema.json``."""

    def __init__(self, message: str, bad: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.bad = bad or {}


def result_filename(record: dict[str, Any]) -> str:
    return f"{record['name']}.json"


def write_result(record: dict[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Validate ``record`` and write it to ``directory/<name>.json`` atomically; returns the path."""
    errors = schema_errors(record)
    if errors:
        raise ResultError(f"result {record.get('name', '?')!r} does not match the schema: " + "; ".join(errors[:10]))
    text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_text(Path(directory) / result_filename(record), text)


def validation_memo(directory: str | os.PathLike[str]) -> Memo:
    """The memo of result files that passed validation, ``<directory>/.cache/validated.json``
    (``metabench.leaderboard.memo``), salted with the source of the schema and of this module."""
    from metabench.leaderboard import schema

    salt = digest(Path(schema.__file__).read_bytes() + Path(__file__).read_bytes())
    return Memo(Path(directory) / CACHE_DIR / "validated.json", salt)


def load_result(path: str | os.PathLike[str], memo: Memo | None = None) -> dict[str, Any]:
    """Read and validate one result file (``ResultError`` names the file and every problem).

    ``memo``: a ``validation_memo``; a file whose bytes passed before is parsed, not revalidated.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        record = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: not readable JSON ({e})", {str(path): [f"not readable JSON ({e})"]}) from None
    key = digest(raw) if memo is not None else ""
    if memo is not None and memo.hit(path.name, key):
        return record
    errors = schema_errors(record)
    if not errors and result_filename(record) != path.name:
        errors = [f"file name does not match the record's name {record['name']!r}"]
    if errors:
        raise ResultError(f"{path}: " + "; ".join(errors[:10]), {str(path): errors})
    if memo is not None:
        memo.record(path.name, key)
    return record


def read_results(directory: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``*.json`` under ``directory`` as ``(path, record)``, sorted by name.

    Raises ``ResultError`` listing every bad file by name (none is skipped silently).
    A missing directory holds no results.
    """
    good, bad = scan_results(directory)
    if bad:
        lines = [f"  {p}: {'; '.join(errs[:3])}" for p, errs in sorted(bad.items())]
        raise ResultError(
            f"{len(bad)} result file(s) in {directory} do not match the schema (fix or delete them):\n"
            + "\n".join(lines),
            bad,
        )
    return good


def scan_results(
    directory: str | os.PathLike[str], memo: Memo | None = None
) -> tuple[list[tuple[Path, dict[str, Any]]], dict[str, list[str]]]:
    """``(good, bad)``: every valid ``*.json`` under ``directory`` as ``(path, record)`` sorted
    by name, and ``path -> problems`` for each file that is not (corrupt, partial, off-schema,
    misnamed). For the pages, which report bad files and render the rest; ``read_results``
    raises instead. ``memo``: see ``load_result`` (saved here, with the files seen this time)."""
    directory = Path(directory)
    if not directory.is_dir():
        return [], {}
    good: list[tuple[Path, dict[str, Any]]] = []
    bad: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            good.append((path, load_result(path, memo)))
        except ResultError as e:
            bad.update(e.bad)
    if memo is not None:
        try:
            memo.save()
        except OSError:  # a read-only leaderboard still renders, it only revalidates next time
            pass
    return good, bad
