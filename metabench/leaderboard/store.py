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


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate one result file (``ResultError`` names the file and every problem)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: not readable JSON ({e})", {str(path): [f"not readable JSON ({e})"]}) from None
    errors = schema_errors(record)
    if not errors and result_filename(record) != path.name:
        errors = [f"file name does not match the record's name {record['name']!r}"]
    if errors:
        raise ResultError(f"{path}: " + "; ".join(errors[:10]), {str(path): errors})
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


def scan_results(directory: str | os.PathLike[str]) -> tuple[list[tuple[Path, dict[str, Any]]], dict[str, list[str]]]:
    """``(good, bad)``: every valid ``*.json`` under ``directory`` as ``(path, record)`` sorted
    by name, and ``path -> problems`` for each file that is not (corrupt, partial, off-schema,
    misnamed). For the pages, which report bad files and render the rest; ``read_results``
    raises instead."""
    directory = Path(directory)
    if not directory.is_dir():
        return [], {}
    good: list[tuple[Path, dict[str, Any]]] = []
    bad: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            good.append((path, load_result(path)))
        except ResultError as e:
            bad.update(e.bad)
    return good, bad
