"""Transfer learners' evaluation by shared features: the frozen tasks as example indices
(``ClassificationEnv.eval_task_examples`` / ``example_images``) and the ``Evaluator`` path that
embeds each example once (``shares_example_features``); the values are the per-task ones."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest

import metabench
from metabench.baselines._synthetic import synthetic_env
from metabench.harness.evaluate import Evaluator, eval_key

TINY = {"channels": 4, "ft_epochs": 3, "batch_size": 8}


@pytest.fixture(scope="module")
def env() -> Any:
    """5-way 1-shot, 3 queries, rotation classes (the omniglot-lite layout), 7 frozen test tasks."""
    e = synthetic_env(5, 1, 3, classes=15, per_class=8, rotations=True)
    e.spec = e.spec.replace(eval_tasks=7)
    return e


@pytest.mark.parametrize("split", ["train", "test"])
def test_eval_task_examples_index_the_eval_tasks_images(env: Any, split: str) -> None:
    tasks, ids = env.eval_tasks(split), env.eval_task_examples(split)
    assert np.asarray(ids.support[0]).dtype == np.int32
    for (x, y), (i, yi) in ((tasks.support, ids.support), (tasks.query, ids.query)):
        images = env.example_images(split, np.asarray(i).reshape(-1)).reshape(x.shape)
        np.testing.assert_array_equal(np.asarray(images), np.asarray(x))
        np.testing.assert_array_equal(np.asarray(yi), np.asarray(y))
    part = env.eval_task_examples(split, 2, 5)
    np.testing.assert_array_equal(np.asarray(part.query[0]), np.asarray(ids.query[0])[2:5])
    assert int(np.max(np.asarray(ids.query[0]))) < env.num_examples(split)


def _train(learner: Any, env: Any, steps: int = 6) -> Any:
    state = learner.init(jax.random.key(0))
    sample, data = learner.train_batches(env)
    step = jax.jit(learner.meta_train_step)
    for t in range(steps):  # moves the running batch-norm statistics off their init
        state, _ = step(state, sample(data, jax.random.key(5), t), jax.random.key(1))
    return state


@pytest.mark.parametrize("learner_id", ["baseline", "baseline-pp"])
def test_shared_features_equal_the_per_task_paths(env: Any, learner_id: str) -> None:
    learner = metabench.make_learner(learner_id, env, **TINY)
    assert learner.shares_example_features
    state = _train(learner, env)
    ev = Evaluator(learner, env, batch_size=3)
    ev.feature_chunk = 16  # several chunks, the last one padded
    shared = ev.curves(state, "test")
    assert ev._shared and shared.shape == (7, 1)
    ev._shared = False
    batched = ev.curves(state, "test")  # batched_eval_curves on the images
    keys = jax.random.split(eval_key(env, "test"), 7)
    tasks = env.eval_tasks("test")
    one = jax.jit(learner.eval_curve)
    loop = np.stack([np.asarray(one(state, jax.tree_util.tree_map(lambda x, i=i: x[i], tasks), keys[i]))
                     for i in range(7)])
    np.testing.assert_allclose(shared, loop, atol=1e-6)
    np.testing.assert_allclose(batched, loop, atol=1e-6)
    ev._shared = True
    np.testing.assert_allclose(ev.curves(state, "test", 4), loop[:4], atol=1e-6)


@pytest.mark.parametrize("learner_id, extra", [
    ("baseline", {"bn": "batch"}), ("baseline", {"finetune": "all"}), ("train-from-scratch", {}),
])
def test_features_that_depend_on_the_task_are_not_shared(env: Any, learner_id: str, extra: dict) -> None:
    learner = metabench.make_learner(learner_id, env, **TINY, **extra)
    assert not learner.shares_example_features
    assert not Evaluator(learner, env)._shared
