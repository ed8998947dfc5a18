"""Pretrain/fine-tune reference: joint regression pre-training, SGD fine-tuning curves, from scratch on images."""

from __future__ import annotations

import jax
import numpy as np

import metabench
from metabench.baselines._synthetic import synthetic_env

leaves = jax.tree_util.tree_leaves


def test_regression_pretraining_reduces_joint_loss_and_curve_shape():
    env = metabench.make("sinusoid-5s")
    learner = metabench.make_learner("pretrain-finetune", env, eval_steps="4")
    c = learner.config
    assert (c.inner_lr, c.eval_steps, c.meta_batch) == (0.01, 4, 25)
    state = learner.init(jax.random.key(0))
    step = jax.jit(learner.meta_train_step)
    sample = env.jit_sample_tasks(c.meta_batch)
    key, losses = jax.random.key(1), []
    for _ in range(200):
        key, k1, k2 = jax.random.split(key, 3)
        state, m = step(state, sample(k1), k2)
        losses.append(float(m["loss"]))
    assert np.mean(losses[-20:]) < np.mean(losses[:5])
    task = jax.tree_util.tree_map(lambda x: x[0], env.eval_tasks("test", 0, 1))
    curve = jax.jit(learner.eval_curve)(state, task, jax.random.key(0))
    assert curve.shape == (5,)
    pred = jax.jit(lambda s, t: learner.predict(s, learner.adapt(s, t.support, jax.random.key(0)), t.query[0]))(state, task)
    mse = np.mean((np.asarray(pred) - np.asarray(task.query[1])) ** 2)
    np.testing.assert_allclose(curve[-1], mse, rtol=1e-5)


def test_classification_trains_from_scratch_on_the_support_set():
    env = synthetic_env(5, 2, 3, classes=25, per_class=6, size=16)
    learner = metabench.make_learner("pretrain-finetune", env, channels=4)
    assert learner.config.eval_steps == 3
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), 2)
    new, m = jax.jit(learner.meta_train_step)(state, tasks, jax.random.key(2))
    assert all(np.array_equal(a, b) for a, b in zip(leaves(new.params), leaves(state.params)))
    assert int(new.step) == 1 and np.isfinite(float(m["loss"]))
    task = jax.tree_util.tree_map(lambda x: x[0], tasks)
    curve = jax.jit(learner.eval_curve)
    c1 = curve(state, task, jax.random.key(5))
    c2 = curve(new, task, jax.random.key(5))
    np.testing.assert_array_equal(c1, c2)  # the state plays no role; the key draws the init
    assert c1.shape == (4,)
