"""Collapse detection (seed 000 Table II): from the learner's metrics and from chance-level validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from metabench.baselines._synthetic import synthetic_env
from metabench.harness.collapse import CHANCE_MARGIN, detect_collapse
from metabench.harness.train import run
from metabench.leaderboard.store import load_result

HEALTHY = [{"step": 10, "value": 0.6}, {"step": 20, "value": 0.8}]


def test_healthy_run_is_not_a_collapse() -> None:
    out = detect_collapse("classification", 5, {"loss": 0.3, "collapsed": 0.0}, HEALTHY)
    assert out == {"detected": False, "step": None, "reasons": []}


def test_learner_reported_collapse_keeps_its_step() -> None:
    out = detect_collapse("classification", 5, {"collapsed": 1.0, "collapse_step": 7.0}, HEALTHY)
    assert out["detected"] and out["step"] == 7
    assert "non-finite" in out["reasons"][0]


def test_chance_level_validation_is_a_collapse_from_its_first_chance_step() -> None:
    history = [{"step": 10, "value": 0.7}, {"step": 20, "value": 0.21}, {"step": 30, "value": 0.2}]
    out = detect_collapse("classification", 5, {}, history)
    assert out["detected"] and out["step"] == 20
    assert "at chance" in out["reasons"][0]
    # just above the margin is not chance
    ok = detect_collapse("classification", 5, {}, [{"step": 10, "value": 0.2 + CHANCE_MARGIN + 0.01}])
    assert not ok["detected"]


def test_regression_has_no_chance_level() -> None:
    assert not detect_collapse("regression", None, {}, [{"step": 1, "value": 1e9}])["detected"]


def test_es_run_with_overflowing_noise_is_recorded_as_collapsed(tmp_path: Path) -> None:
    """sigma = 1e30 makes every candidate overflow: the ES learner latches ``collapsed`` at
    step 0, the run finishes instead of crashing, and the result JSON records the collapse."""
    env = synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6)
    res = run(env, "es-protonet", steps=3, out_dir=tmp_path, val_every=3, val_tasks=4, progress=False,
              overrides={"channels": 2, "depth": 1, "population": 4, "sigma": 1e30})
    collapse = res.record["train"]["collapse"]
    assert collapse["detected"] and collapse["step"] == 0
    assert res.record["train"]["final_metrics"]["collapsed"] == 1.0
    assert load_result(res.path)["train"]["collapse"] == collapse


@pytest.mark.parametrize("learner", ["protonet"])
def test_backprop_run_records_no_collapse(tmp_path: Path, learner: str) -> None:
    env = synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6)
    res = run(env, learner, steps=2, out_dir=tmp_path, val_every=0, progress=False,
              overrides={"channels": 2, "depth": 1})
    assert res.record["train"]["collapse"] == {"detected": False, "step": None, "reasons": []}
    assert "loss" in res.record["train"]["final_metrics"]
