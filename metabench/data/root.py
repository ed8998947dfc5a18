"""Where datasets live (``data_root``) and where preprocessed caches go (``cache_dir``).

Resolution order of the data root: the ``root=`` argument, then ``$METABENCH_DATA``, then a
per-user directory (``$XDG_DATA_HOME/metabench`` or ``~/.local/share/metabench``). Caches
never go inside the data root (it may be read-only, e.g. a shared mount): ``$METABENCH_CACHE``,
else ``$XDG_CACHE_HOME/metabench`` or ``~/.cache/metabench``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the data root.
DATA_ENV = "METABENCH_DATA"
#: Environment variable naming the cache directory.
CACHE_ENV = "METABENCH_CACHE"


def _expand(p: str | os.PathLike[str]) -> Path:
    return Path(os.path.expandvars(os.fspath(p))).expanduser()


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding datasets: ``root``, ``$METABENCH_DATA`` or the per-user data dir."""
    if root is not None and os.fspath(root) != "":
        return _expand(root)
    env = os.environ.get(DATA_ENV)
    if env:
        return _expand(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = _expand(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "metabench"


def cache_dir() -> Path:
    """The directory of preprocessed caches: ``$METABENCH_CACHE`` or the per-user cache dir."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return _expand(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = _expand(xdg) if xdg else Path.home() / ".cache"
    return base / "metabench"
