"""Metric summaries, directions, evaluation keys and frozen-task prefixes."""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
import pytest

import metabench
from metabench.errors import ConfigError
from metabench.harness import Evaluator, config_hash, eval_key, metric_for, summarize, summarize_curve
from metabench.harness.metrics import is_better


def test_summarize_uses_1_96_sigma_over_sqrt_n() -> None:
    s = summarize([0.0, 1.0, 1.0, 0.0])
    assert s == {"mean": 0.5, "std": 0.5, "ci95": 1.96 * 0.5 / 2, "n_tasks": 4}
    c = summarize_curve(np.array([[0.0, 1.0], [2.0, 1.0]]))
    assert c == {"x": [0, 1], "mean": [1.0, 1.0], "ci95": [1.96 * 1.0 / math.sqrt(2), 0.0], "n_tasks": 2}
    with pytest.raises(ConfigError):
        summarize([])


def test_directions() -> None:
    assert metric_for("classification") == ("accuracy", True)
    assert metric_for("regression") == ("mse", False)
    assert is_better(0.1, 0.2, False) and not is_better(0.2, 0.2, True) and is_better(0.3, None, True)
    assert not is_better(float("nan"), None, True)
    with pytest.raises(ConfigError):
        metric_for("ranking")


def test_eval_keys_depend_on_env_and_split_only(sine_env: Any) -> None:
    other = metabench.make("sinusoid-10s")
    data = lambda k: np.asarray(jax.random.key_data(k))  # noqa: E731
    np.testing.assert_array_equal(data(eval_key(sine_env, "test")), data(eval_key(sine_env, "test")))
    assert not np.array_equal(data(eval_key(sine_env, "test")), data(eval_key(sine_env, "val")))
    assert not np.array_equal(data(eval_key(sine_env, "test")), data(eval_key(other, "test")))


def test_evaluating_a_prefix_gives_the_prefix(tiny: Any, sine_env: Any) -> None:
    learner = metabench.make_learner("tiny-ridge", sine_env)
    state = learner.init(jax.random.key(0))
    full = Evaluator(learner, sine_env, batch_size=16).curves(state, "test")
    part = Evaluator(learner, sine_env, batch_size=7).curves(state, "test", 10)
    assert full.shape == (40, 2)
    np.testing.assert_allclose(part, full[:10], rtol=1e-6)
    with pytest.raises(ConfigError, match="cannot evaluate on 41 tasks"):
        Evaluator(learner, sine_env).curves(state, "test", 41)


def test_curves_of_given_tasks_match_the_frozen_split(sine_env: Any) -> None:
    """``curves_of`` on the frozen tasks with the split's keys gives ``curves``; other keys other values."""
    learner = metabench.make_learner("tiny-ridge", sine_env)
    state = learner.init(jax.random.key(0))
    ev = Evaluator(learner, sine_env, batch_size=7)
    keys = jax.random.split(eval_key(sine_env, "test"), 40)
    given = ev.curves_of(state, sine_env.eval_tasks("test"), keys)
    np.testing.assert_array_equal(given, ev.curves(state, "test"))
    pool = sine_env.sample_tasks(jax.random.key(3), 12, "test")
    other = ev.curves_of(state, pool, jax.random.split(jax.random.key(4), 12))
    assert other.shape == (12, 2) and not np.allclose(other, given[:12])


def test_per_task_evaluation_equals_vmapped_evaluation() -> None:
    """MAML on images evaluates one task per call (``eval_per_task``); the values are the vmapped ones."""
    from metabench.baselines._synthetic import synthetic_env

    env = synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6)
    learner = metabench.make_learner("maml", env, channels=4, meta_batch=2, eval_steps=2)
    assert learner.eval_per_task
    state = learner.init(jax.random.key(0))
    per_task = Evaluator(learner, env, batch_size=4).curves(state, "test", 6)
    learner.eval_per_task = False
    batched = Evaluator(learner, env, batch_size=4).curves(state, "test", 6)
    assert per_task.shape == batched.shape == (6, 3)
    np.testing.assert_allclose(per_task, batched, rtol=1e-5, atol=1e-6)
    assert not metabench.make_learner("maml", metabench.make("sinusoid-5s")).eval_per_task  # vmapped MLPs


def test_config_hash_ignores_data_paths_but_not_settings() -> None:
    spec = metabench.spec("omniglot-lite-5w1s").to_dict()
    moved = {**spec, "kwargs": {**spec["kwargs"], "root": "/elsewhere"}, "overrides": ["root"]}
    base = dict(steps=10, val_every=5, val_tasks=10)
    h = config_hash(spec, "protonet", {"lr": 1e-3}, **base)
    assert config_hash(moved, "protonet", {"lr": 1e-3}, **base) == h
    assert config_hash(spec, "protonet", {"lr": 2e-3}, **base) != h
    assert config_hash(spec, "protonet", {"lr": 1e-3}, **{**base, "steps": 11}) != h
    assert config_hash(spec, "maml", {"lr": 1e-3}, **base) != h


def test_options_added_later_stay_out_of_the_hash_at_their_default() -> None:
    """``LearnerConfig.hash_omits_default``: MAML-RL's ``hvp`` and ``kl_weighting`` (added after
    the first published runs) stay out of the hash at their defaults, so configurations they do
    not touch keep their hashes (Nav2d's PPO ignores ``kl_weighting``); any other value changes
    it. TRPO resolves ``kl_weighting`` to Finn et al.'s ``"pooled"``, which is hashed: the
    point-nav default is ``d233bc0e`` since then, and the earlier per-task weighting
    (``2366e11e``) is ``kl_weighting="task"`` under a hash of its own."""
    env = metabench.make("point-nav")
    base = dict(steps=100, val_every=10, val_tasks=40)
    default = metabench.make_learner("maml", env).config
    assert "hvp" in default.to_dict() and "hvp" not in default.hash_dict()
    assert default.hash_dict()["kl_weighting"] == "pooled"
    assert config_hash(env.spec.to_dict(), "maml", default.hash_dict(), **base).startswith("d233bc0e")
    task = metabench.make_learner("maml-rl", env, kl_weighting="task").config
    assert task.hash_dict()["kl_weighting"] == "task"
    nav = metabench.make_learner("maml", metabench.make("nav2d-easy")).config
    assert nav.outer == "ppo" and nav.kl_weighting is None and "kl_weighting" not in nav.hash_dict()
    fd = metabench.make_learner("maml-rl", env, hvp="finite_difference").config
    exact = metabench.make_learner("maml-rl", env).config
    assert fd.hash_dict()["hvp"] == "finite_difference"
    for other in (fd, task):
        assert (config_hash(env.spec.to_dict(), "maml-rl", other.hash_dict(), **base)
                != config_hash(env.spec.to_dict(), "maml-rl", exact.hash_dict(), **base))
