"""Atomic writes: the whole new file or the old one, never a temp file left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from metabench.atomic import atomic_write_bytes, atomic_write_json


def test_json_round_trip_sorted_with_final_newline(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "sub" / "r.json", {"b": [1, 2], "a": {"y": 1, "x": 0.5}}, indent=1)
    text = path.read_text()
    assert json.loads(text) == {"a": {"x": 0.5, "y": 1}, "b": [1, 2]}
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = atomic_write_json(tmp_path / "r.json", {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})  # not JSON: nothing is written
    assert json.loads(path.read_text()) == {"ok": 1}

    def disk_full(fd: int) -> None:  # the temp file is written, then syncing it fails
        raise OSError("disk full")

    monkeypatch.setattr("metabench.atomic.os.fsync", disk_full)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"partial")
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_new_files_follow_the_umask_and_replacements_keep_their_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        fresh = atomic_write_json(tmp_path / "new.json", {"a": 1})
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        kept.chmod(0o604)
        atomic_write_json(kept, {"b": 2})
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604
        assert json.loads(kept.read_text()) == {"b": 2}
    finally:
        os.umask(old)
