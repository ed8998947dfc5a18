"""The harness run loop: records, determinism, validation, best-state selection, errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import metabench
from metabench.errors import ConfigError, UnknownIdError
from metabench.harness import Evaluator, NonFiniteLossError, run
from metabench.leaderboard import schema_errors

SMALL = dict(steps=12, val_every=4, val_tasks=10, progress=False)


def leaves(tree: Any) -> list[np.ndarray]:
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out.append(np.asarray(leaf))
    return out


def test_regression_run_writes_a_valid_record(baseline: Any, sine_env: Any) -> None:
    r, rec = baseline, baseline.record
    assert schema_errors(rec) == []
    assert r.path.name == f"sinusoid-5s-v0__tiny-ridge__{rec['config_hash'][:8]}__s0.json"
    assert r.path.parent.name == "results" and r.path.exists()
    assert r.checkpoint == r.path.parent.parent / "runs" / rec["name"] / "checkpoint.npz"
    assert r.checkpoint.exists()
    m = r.metric
    assert (m["name"], m["n_tasks"], m["higher_is_better"]) == ("mse", 40, False)
    # the headline is the last point of the per-step curve; the zero predictor is much worse than ridge
    (curve,) = rec["curves"]
    assert curve["x"] == [0, 1] and curve["mean"][1] == pytest.approx(m["mean"])
    assert curve["mean"][0] > 2 * curve["mean"][1]
    assert m["ci95"] == pytest.approx(1.96 * m["std"] / math.sqrt(40))
    hist = rec["validation"]["history"]
    assert [h["step"] for h in hist] == [4, 8, 12]
    assert all(h["train_loss"] is not None and h["train_loss"] > 0 for h in hist)
    assert rec["env"]["eval_hash"] == sine_env.eval_hash("test")
    assert rec["learner"]["config"]["lr"] == 0.1 and rec["seed"] == 0
    assert rec["train"]["tasks"] == 12 * 4 and rec["memory"]["peak_rss_bytes"] > 0


def test_the_best_validation_state_is_evaluated(baseline: Any, sine_env: Any) -> None:
    v = baseline.record["validation"]
    best = min(v["history"], key=lambda h: h["value"])
    assert v["best_step"] == best["step"] and v["best_value"] == best["value"]
    ev = Evaluator(metabench.make_learner("tiny-ridge", sine_env), sine_env)
    assert float(ev.curves(baseline.state, "val", 10)[:, -1].mean()) == pytest.approx(best["value"], rel=1e-6)
    test = ev.curves(baseline.state, "test")[:, -1]
    assert float(test.mean()) == pytest.approx(baseline.metric["mean"], rel=1e-6)


def test_same_seed_is_bitwise_reproducible_and_seeds_differ(baseline: Any, sine_env: Any, tmp_path: Path) -> None:
    b = run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path / "b", **SMALL)
    for x, y in zip(leaves(baseline.final_state), leaves(b.final_state)):
        np.testing.assert_array_equal(x, y)
    assert b.metric == baseline.metric
    assert b.record["validation"]["history"] == baseline.record["validation"]["history"]
    c = run(sine_env, "tiny-ridge", seed=1, out_dir=tmp_path / "c", steps=4, val_every=0, progress=False)
    b4 = run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path / "d", steps=4, val_every=0, progress=False)
    assert float(c.final_state.log_lam) != float(b4.final_state.log_lam)
    assert c.record["name"].endswith("__s1") and c.record["config_hash"] == b4.record["config_hash"]


def test_no_validation_evaluates_the_final_state(baseline: Any, sine_env: Any, tmp_path: Path) -> None:
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path, steps=3, val_every=0, progress=False)
    assert r.record["validation"]["history"] == [] and r.record["validation"]["best_step"] is None
    assert float(r.state.log_lam) == float(r.final_state.log_lam)
    assert r.record["config_hash"] != baseline.record["config_hash"]


def test_steps_and_validation_default_to_the_learners_choice_else_the_harness_default(
    tiny: Any, sine_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import metabench.harness.train as train

    monkeypatch.setattr(train, "DEFAULT_STEPS", 2)  # the harness default (1000) would be slow here
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "a", val_every=0, progress=False)
    assert r.record["run"]["steps"] == 2 and int(r.final_state.step) == 2
    monkeypatch.setattr(tiny.TinyRidge, "default_steps", 3)  # a learner with a budget for the env
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "b", val_every=0, progress=False)
    assert r.record["run"]["steps"] == 3 and int(r.final_state.step) == 3
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "c", steps=1, val_every=0, progress=False)
    assert r.record["run"]["steps"] == 1  # an explicit count wins
    # validation: the harness default (100: only at the end here), the learner's, an explicit one
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "d", progress=False)
    assert r.record["run"]["val_every"] == 100 and [h["step"] for h in r.record["validation"]["history"]] == [3]
    monkeypatch.setattr(tiny.TinyRidge, "default_val_every", 1)
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "e", val_tasks=5, progress=False)
    assert r.record["run"]["val_every"] == 1 and [h["step"] for h in r.record["validation"]["history"]] == [1, 2, 3]
    monkeypatch.setattr(tiny.TinyRidge, "default_val_every", 0)  # a learner may turn validation off
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "f", val_tasks=5, progress=False)
    assert r.record["run"]["val_every"] == 0 and r.record["validation"]["history"] == []


def test_classification_run(tiny: Any, image_env: Any, tmp_path: Path) -> None:
    r = run(image_env, "tiny-centroid", out_dir=tmp_path, steps=6, val_every=3, val_tasks=5, progress=False)
    m = r.metric
    assert (m["name"], m["n_tasks"], m["higher_is_better"]) == ("accuracy", 20, True)
    assert 0.2 < m["mean"] <= 1.0
    assert r.record["curves"] == []  # a curve of length one is only the headline
    assert float(r.final_state.scale) != 1.0  # the scalar was meta-trained
    assert schema_errors(r.record) == []


def test_nan_loss_stops_naming_step_and_checkpoint(tiny: Any, sine_env: Any, tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError) as e:
        run(sine_env, "tiny-ridge", out_dir=tmp_path, overrides={"nan_at": 7}, steps=12, val_every=0,
            checkpoint_every=5, log_every=3, progress=False)
    msg = str(e.value)
    assert "at step 7" in msg and "checkpoint.npz (step 5)" in msg
    assert not (tmp_path / "results").exists()


def test_kind_mismatch_and_bad_keys_fail_before_building_the_env(
    tiny: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("the env was built")

    monkeypatch.setattr(metabench, "make", boom)
    with pytest.raises(ConfigError, match="does not support regression envs"):
        run("sinusoid-5s", "tiny-centroid", out_dir=tmp_path, steps=1, progress=False)
    with pytest.raises(ConfigError, match="unknown config key 'lrr'.*'lr'"):
        run("sinusoid-5s", "tiny-ridge", out_dir=tmp_path, steps=1, overrides={"lrr": 1}, progress=False)
    with pytest.raises(UnknownIdError, match="tiny-ridge"):
        run("sinusoid-5s", "tiny-ridgee", out_dir=tmp_path, steps=1, progress=False)


def test_bad_run_settings(tiny: Any, sine_env: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        run(sine_env, "tiny-ridge", out_dir=tmp_path, steps=0)
    with pytest.raises(ConfigError, match="unknown option 'shotz'"):
        run("sinusoid-5s", "tiny-ridge", out_dir=tmp_path, steps=1, env_overrides={"shotz": 3})


def test_train_ways_differ_from_test_ways(tmp_path) -> None:
    """--train-env-set ways=N: ProtoNet trains on N-way tasks, validates and tests at the env's ways."""
    from metabench.baselines._synthetic import synthetic_env
    from metabench.harness import RunConfig, run_config

    env = synthetic_env(ways=3, shots=1, queries=2, classes=30, per_class=6)
    cfg = RunConfig(env=env.spec.id, learner="protonet", steps=2, out_dir=str(tmp_path), val_every=0,
                    progress=False, overrides={"channels": 2, "depth": 1}, train_env_overrides={"ways": 5})
    res = run_config(cfg, env=env)
    assert res.record["run"]["train_env"]["kwargs"]["ways"] == 5
    assert res.record["env"]["spec"]["kwargs"]["ways"] == 3
    plain = run_config(dataclasses.replace(cfg, train_env_overrides={}), env=env)
    assert plain.record["run"]["train_env"] is None
    assert plain.record["config_hash"] != res.record["config_hash"]


def test_train_ways_refused_for_n_way_heads(tmp_path) -> None:
    from metabench.baselines._synthetic import synthetic_env
    from metabench.harness import RunConfig, run_config

    env = synthetic_env(ways=3, shots=1, queries=2, classes=20, per_class=6)
    cfg = RunConfig(env=env.spec.id, learner="maml-fo", steps=1, out_dir=str(tmp_path), val_every=0,
                    progress=False, overrides={"channels": 2, "depth": 1}, train_env_overrides={"ways": 5})
    with pytest.raises(ConfigError, match="N-way output"):
        run_config(cfg, env=env)


def test_train_env_overrides_other_than_ways_and_queries_are_refused(tmp_path) -> None:
    from metabench.harness import RunConfig, run_config

    cfg = RunConfig(env="sinusoid-5s", learner="maml", steps=1, out_dir=str(tmp_path), val_every=0,
                    progress=False, train_env_overrides={"shots": 5})
    with pytest.raises(ConfigError, match="may set queries, ways only"):
        run_config(cfg)
