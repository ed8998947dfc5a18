"""Re-renders redo only what changed: the validation and plot memos (``metabench.leaderboard.memo``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from metabench.leaderboard import regenerate, write_result
from metabench.leaderboard.memo import Memo
from metabench.leaderboard.store import scan_results, validation_memo


def test_memo_round_trip_salt_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / ".cache" / "m.json"
    m = Memo(path, "s1")
    assert not m.hit("a", "x")
    m.record("a", "x")
    m.save()
    assert Memo(path, "s1").hit("a", "x") and not Memo(path, "s1").hit("a", "y")
    assert not Memo(path, "s2").hit("a", "x")  # another salt: everything is redone
    path.write_text("{not json")
    assert not Memo(path, "s1").hit("a", "x")  # a corrupt memo is an empty one
    path.write_text("[1, 2]")
    assert not Memo(path, "s1").hit("a", "x")


def test_a_memoised_file_that_changes_is_validated_again(records: Any, variant: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    path = write_result(variant(records["regression"], learner="ridge-a"), results)
    good, bad = scan_results(results, validation_memo(tmp_path))
    assert len(good) == 1 and not bad
    calls: list[str] = []
    import metabench.leaderboard.store as store

    real = store.schema_errors
    monkeypatch.setattr(store, "schema_errors", lambda rec: calls.append(rec["name"]) or real(rec))
    good, bad = scan_results(results, validation_memo(tmp_path))
    assert len(good) == 1 and not bad and calls == []  # same bytes: parsed, not revalidated
    rec = json.loads(path.read_text())
    rec["timestamp"] = "not-a-date"
    path.write_text(json.dumps(rec))
    good, bad = scan_results(results, validation_memo(tmp_path))
    assert not good and list(bad) == [str(path)] and "timestamp" in bad[str(path)][0]
    assert calls == [rec["name"]]


def test_unchanged_plots_are_not_redrawn_and_changed_ones_are(records: Any, variant: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    write_result(variant(records["regression"], learner="ridge-a", mean=0.9), results)
    write_result(variant(records["classification"], learner="cent-a", mean=0.5), results)
    regenerate(tmp_path, canonical={}, plan_envs=())
    import metabench.leaderboard.plots as plots

    drawn: list[str] = []
    real = plots._draw
    monkeypatch.setattr(plots, "_draw", lambda spec, path: drawn.append(spec["file"]) or real(spec, path))
    regenerate(tmp_path, canonical={}, plan_envs=())
    assert drawn == []
    write_result(variant(records["classification"], learner="cent-b", mean=0.7), results)
    regenerate(tmp_path, canonical={}, plan_envs=())
    assert drawn and all(f.startswith("synthetic-5w1s-v0__") for f in drawn)  # only the changed env
    drawn.clear()
    (tmp_path / "plots" / "sinusoid-5s-v0__mse.png").unlink()  # a missing file is redrawn
    regenerate(tmp_path, canonical={}, plan_envs=())
    assert drawn == ["sinusoid-5s-v0__mse.png"]
