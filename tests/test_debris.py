"""Temp files of killed writers (``metabench.debris``): a SIGKILLed writer's temp file is removed by
the next writer and by ``metabench leaderboard`` once past the grace period, never before, and
never read as a result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metabench import debris
from metabench.atomic import atomic_write_text
from metabench.leaderboard import read_results, regenerate

_KILLED_WRITER = r"""
import os, signal, sys
import metabench.atomic as A
def die(src, dst):  # the temp file is written and fsynced; die before the rename
    os.kill(os.getpid(), signal.SIGKILL)
A.os.replace = die
A.atomic_write_text(sys.argv[1], '{"half": "written"}')
"""


def _killed_writer_temp(target: Path) -> Path:
    """Run a writer that is SIGKILLed between writing its temp file and renaming it; its temp file."""
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], capture_output=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not target.exists()
    (tmp,) = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert debris.is_temp_name(tmp.name)
    return tmp


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_killed_writers_temp_is_cleaned_by_the_next_writer_after_the_grace_period(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    stale = _killed_writer_temp(results / "a.json")
    young = _killed_writer_temp(results / "b.json")
    _age(stale, debris.STALE_AFTER_S + 60)
    _age(young, debris.STALE_AFTER_S - 600)  # within the grace period: a writer might still be busy
    atomic_write_text(results / "c.json", "{}")
    assert not stale.exists(), "the abandoned temp file was not removed by the next writer"
    assert young.exists(), "a temp file within the grace period was removed"
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith(".")) == ["c.json"]


def test_readers_never_count_temp_files_and_leaderboard_cleans_them(tmp_path: Path) -> None:
    board = tmp_path / "board"
    (board / "results").mkdir(parents=True)
    stale = _killed_writer_temp(board / "results" / "x__y__0123abcd__s0.json")
    young = board / "results" / ".x__y__0123abcd__s1.json.abcd_123.tmp"
    young.write_text("{}")
    assert read_results(board / "results") == []  # neither temp file is read (nor reported as bad)
    _age(stale, debris.STALE_AFTER_S * 2)
    regenerate(board, plots=False)
    assert not stale.exists() and young.exists()


@pytest.mark.parametrize(
    "name, expected",
    [
        (".r.json.31_h1xrl.tmp", True),
        (".README.md.abcdefgh.tmp", True),
        ("r.json.abcdefgh.tmp", False),  # not hidden: not ours
        (".r.json.tmp", False),  # no random part
        (".r.json.ABCDEFGH.tmp", False),  # mkstemp uses lower case
        (".r.json.abcdefgh.tmp.bak", False),
    ],
)
def test_only_the_atomic_writers_names_match(name: str, expected: bool) -> None:
    assert debris.is_temp_name(name) is expected


def test_directories_symlinks_and_other_files_are_left_alone(tmp_path: Path) -> None:
    d = tmp_path / ".omniglot-28-0123456789abcdef.abcdefgh.tmp"  # a cache being built (mkdtemp)
    d.mkdir()
    other = tmp_path / "notes.tmp"
    other.write_text("x")
    target = tmp_path / "target"
    target.write_text("x")
    link = tmp_path / ".l.json.abcdefgh.tmp"
    link.symlink_to(target)
    for p in (d, other, target):
        _age(p, debris.STALE_AFTER_S * 3)
    assert debris.clean_stale_temps(tmp_path) == []
    assert d.is_dir() and other.exists() and link.is_symlink() and target.exists()


def test_grace_period_is_relative_to_now(tmp_path: Path) -> None:
    f = tmp_path / ".r.json.abcdefgh.tmp"
    f.write_text("x")
    mtime = f.stat().st_mtime
    assert debris.stale_temps(tmp_path, grace_s=100, now=mtime + 99) == []
    assert debris.stale_temps(tmp_path, grace_s=100, now=mtime + 101) == [f]
    assert debris.clean_stale_temps(tmp_path, grace_s=100, now=mtime + 101) == [f] and not f.exists()
    assert debris.clean_stale_temps(tmp_path / "missing") == []


def test_killed_cache_builders_directory_is_removed_by_the_next_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from metabench.data import load_or_build

    cache = tmp_path / "cache"
    monkeypatch.setenv("METABENCH_CACHE", str(cache))
    cache.mkdir()
    old = cache / ".omniglot-28-0123456789abcdef.k1ll3d_x.tmp"  # a builder killed while writing
    old.mkdir()
    (old / "images.npy").write_bytes(b"half")
    trash = cache / ".omniglot-28-0123456789abcdef.abcdefgh.stale"
    trash.mkdir()
    live = cache / ".omniglot-28-fedcba9876543210.b_sy1234.tmp"  # a builder writing now
    live.mkdir()
    for p in (old / "images.npy", old, trash):
        _age(p, debris.STALE_AFTER_S + 60)
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    load_or_build("t", [src], {}, lambda: {"x": np.zeros(3, np.uint8)})
    assert not old.exists() and not trash.exists() and live.is_dir()
