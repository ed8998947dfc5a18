"""ES learners through the real harness: a short run, and a collapse that must not stop it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metabench.harness.train import run

SMALL = {"hidden": (8,), "population": 4, "meta_batch": 2, "inner_steps": 1, "eval_steps": 1}


def test_es_maml_runs_in_the_harness(tmp_path: Path) -> None:
    seen = []
    res = run("sinusoid-5s", "es-maml", steps=3, out_dir=tmp_path, val_every=0, progress=False,
              write_result=False, overrides={**SMALL, "sigma": 0.05, "alpha": 0.1},
              callback=lambda step, state, metrics: seen.append(float(metrics["collapsed"])))
    assert seen == [0.0, 0.0, 0.0]
    assert np.isfinite(res.metric["mean"])


def test_collapse_is_recorded_not_raised(tmp_path: Path) -> None:
    """sigma=1e30 overflows every candidate's loss: the run finishes, the state is frozen."""
    seen = []

    def callback(step, state, metrics):
        seen.append((float(metrics["collapsed"]), int(metrics["collapse_step"]), float(metrics["loss"])))

    res = run("sinusoid-5s", "es-maml", steps=3, out_dir=tmp_path, val_every=0, progress=False,
              write_result=False, overrides={**SMALL, "sigma": 1e30}, callback=callback)
    assert [s[:2] for s in seen] == [(1.0, 0)] * 3
    assert all(np.isfinite(s[2]) for s in seen)
    assert np.isfinite(res.metric["mean"])  # evaluated at the frozen (initial) parameters
