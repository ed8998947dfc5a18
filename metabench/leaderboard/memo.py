"""A small content-addressed memo on disk, so a re-render redoes only what changed.

``Memo(path, salt)`` maps a name (a result file, a plot) to the digest of what it was made
from. The leaderboard keeps two under ``<leaderboard>/.cache/`` (git-ignored):

* ``validated.json``: result file name -> xxh3-128 of the file's bytes, for files that passed
  the schema; ``salt`` is the schema itself, so a schema change revalidates everything;
* ``plots.json``: PNG name -> digest of the data and labels drawn, salted with matplotlib's
  version; a plot whose inputs are unchanged and whose file exists is not drawn again.

A digest is of content, never of a timestamp, so a memo can only skip work whose output
would be identical. A missing, corrupt or foreign memo file is an empty memo (the work is
redone and the file rewritten atomically); names not seen in a render are dropped on save.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import xxhash

from metabench.atomic import atomic_write_json

CACHE_DIR = ".cache"


def digest(data: bytes | str) -> str:
    """xxh3-128 hex digest of ``data`` (str is UTF-8 encoded)."""
    return xxhash.xxh3_128_hexdigest(data.encode("utf-8") if isinstance(data, str) else data)


def digest_json(obj: Any) -> str:
    """Digest of ``obj``'s canonical JSON (sorted keys; non-JSON values by ``repr``)."""
    return digest(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr))


class Memo:
    """``name -> digest`` entries under ``salt``, loaded from and saved to ``path``."""

    def __init__(self, path: str | os.PathLike[str], salt: str):
        self.path = Path(path)
        self.salt = salt
        self._old: dict[str, str] = {}
        self._new: dict[str, str] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return
        if isinstance(data, dict) and data.get("salt") == salt and isinstance(data.get("entries"), dict):
            self._old = {k: v for k, v in data["entries"].items() if isinstance(k, str) and isinstance(v, str)}

    def hit(self, name: str, value: str) -> bool:
        """Whether ``name`` was last recorded with ``value`` (and keep it for the next save)."""
        if self._old.get(name) == value:
            self._new[name] = value
            return True
        return False

    def record(self, name: str, value: str) -> None:
        """Record that ``name`` is now made from ``value``."""
        self._new[name] = value

    def save(self) -> None:
        """Write the entries hit or recorded since loading (atomically); skipped when unchanged."""
        if self._new == self._old and self.path.exists():
            return
        atomic_write_json(self.path, {"salt": self.salt, "entries": dict(sorted(self._new.items()))})
