"""Temp files left by killed writers: recognised by name and age, removed after a grace period.

``metabench.atomic`` writes ``.<name>.<8 random chars>.tmp`` next to its target and renames it
into place; a writer killed in between (SIGKILL, power loss) leaves that file behind. The next
atomic write into the same directory, and ``metabench leaderboard``, call
``clean_stale_temps``: such files whose last modification is older than ``grace_s`` (default
one hour, far longer than any write takes, so a live writer's file is never touched) are
removed. Only regular files of exactly that name pattern are considered: directories (a cache
being built), symlinks and other names are left alone. Readers never see these files: result
readers list ``*.json`` only.

``clean_stale_dirs`` does the same for the build directories of ``metabench.data.cache``
(``.<name>-<key>.<8>.tmp`` and ``.stale`` trash, ``tempfile.mkdtemp``): a builder killed while
writing a cache leaves one, possibly gigabytes; the next build in that cache directory
removes those older than the grace period (a build writes its directory in seconds to
minutes, after its arrays are ready).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger("metabench")

#: Seconds after its last modification when a writer's temp file counts as abandoned.
STALE_AFTER_S = 3600.0
#: The names ``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")`` gives (``metabench.atomic``).
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: The names of ``metabench.data.cache``'s build and trash directories.
TEMP_DIR_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.(tmp|stale)$")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is an atomic writer's temp file name."""
    return TEMP_NAME.match(name) is not None


def stale_temps(directory: str | os.PathLike[str], *, grace_s: float = STALE_AFTER_S, now: float | None = None,
                dirs: bool = False) -> list[Path]:
    """The writer temp files (``dirs``: build directories) in ``directory`` last modified more than
    ``grace_s`` seconds before ``now``."""
    cutoff = (time.time() if now is None else now) - grace_s
    pattern = TEMP_DIR_NAME if dirs else TEMP_NAME
    out = []
    try:
        with os.scandir(directory) as it:
            for e in it:
                if not pattern.match(e.name):
                    continue
                try:
                    kind_ok = e.is_dir(follow_symlinks=False) if dirs else e.is_file(follow_symlinks=False)
                    if kind_ok and e.stat(follow_symlinks=False).st_mtime < cutoff:
                        out.append(Path(e.path))
                except OSError:  # vanished meanwhile (renamed into place or cleaned by another process)
                    continue
    except OSError:
        return []
    return sorted(out)


def clean_stale_temps(directory: str | os.PathLike[str], *, grace_s: float = STALE_AFTER_S, now: float | None = None) -> list[Path]:
    """Remove ``stale_temps(directory)``; returns what was removed. Never raises for a file it cannot remove."""
    removed = []
    for p in stale_temps(directory, grace_s=grace_s, now=now):
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("cannot remove the abandoned temp file %s (%s)", p, e)
    if removed:
        log.info("removed %d abandoned temp file(s) older than %.0f s in %s", len(removed), grace_s, directory)
    return removed


def clean_stale_dirs(directory: str | os.PathLike[str], *, grace_s: float = STALE_AFTER_S, now: float | None = None) -> list[Path]:
    """Remove the abandoned cache build directories in ``directory`` (``stale_temps(..., dirs=True)``)."""
    removed = []
    for p in stale_temps(directory, grace_s=grace_s, now=now, dirs=True):
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            removed.append(p)
    if removed:
        log.info("removed %d abandoned cache build director%s in %s", len(removed), "y" if len(removed) == 1 else "ies", directory)
    return removed
