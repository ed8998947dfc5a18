"""ProtoNet: eq. 1-2 logits, cosine option, episode folding, contract errors, training on synthetic images."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.baselines._synthetic import synthetic_env
from metabench.baselines.protonet import proto_logits
from metabench.errors import ConfigError

leaves = jax.tree_util.tree_leaves


@pytest.fixture(scope="module")
def env():
    return synthetic_env(5, 2, 4, classes=30, per_class=8, size=16)


def test_logits_are_negative_squared_distances_to_mean_prototypes():
    rng = np.random.default_rng(0)
    emb_s, emb_q = rng.normal(size=(6, 5)), rng.normal(size=(4, 5))
    y_s = np.array([0, 0, 1, 1, 2, 2])
    got = np.asarray(proto_logits(jnp.asarray(emb_s), jnp.asarray(y_s), jnp.asarray(emb_q), 3, "euclidean", 1.0))
    protos = np.stack([emb_s[y_s == k].mean(0) for k in range(3)])
    want = -((emb_q[:, None, :] - protos[None]) ** 2).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    cos = np.asarray(proto_logits(jnp.asarray(emb_s), jnp.asarray(y_s), jnp.asarray(emb_q), 3, "cosine", 10.0))
    nq = emb_q / np.linalg.norm(emb_q, axis=1, keepdims=True)
    npr = protos / np.linalg.norm(protos, axis=1, keepdims=True)
    np.testing.assert_allclose(cos, 10.0 * nq @ npr.T, rtol=1e-5, atol=1e-5)


def test_regression_env_is_rejected_before_training():
    with pytest.raises(ConfigError, match="classification"):
        metabench.make_learner("protonet", metabench.make("sinusoid-5s"))
    with pytest.raises(ConfigError, match="distance"):
        metabench.make_learner("protonet", synthetic_env(5, 1, 2, classes=25, per_class=4, size=16), distance="l1")


def test_shapes_determinism_and_contract(env):
    learner = metabench.make_learner("protonet", env, channels="8", meta_batch="2")
    assert learner.config.channels == 8 and learner.config.meta_batch == 2
    s1, s2 = learner.init(jax.random.key(0)), learner.init(jax.random.key(0))
    assert all(np.array_equal(a, b) for a, b in zip(leaves(s1), leaves(s2)))
    tasks = env.sample_tasks(jax.random.key(1), 2)
    step = jax.jit(learner.meta_train_step)
    a, m = step(s1, tasks, jax.random.key(2))
    b, _ = step(s2, tasks, jax.random.key(2))
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
    assert set(m) == {"loss", "accuracy"}
    task = jax.tree_util.tree_map(lambda x: x[0], tasks)
    logits = jax.jit(lambda s, t: learner.predict(s, learner.adapt(s, t.support, jax.random.key(0)), t.query[0]))(a, task)
    assert logits.shape == (20, 5)
    curve = jax.jit(learner.eval_curve)(a, task, jax.random.key(0))
    assert curve.shape == (1,)
    np.testing.assert_allclose(curve[0], jnp.mean(jnp.argmax(logits, -1) == task.query[1]))


def test_reshape_and_vmap_episode_batching_agree(env):
    tasks = env.sample_tasks(jax.random.key(3), 3)
    # continuous images: the synthetic ones are binary, and exact ties in max pooling make
    # gradients depend on float rounding order
    rand = lambda x, k: jax.random.uniform(jax.random.key(k), x.shape)  # noqa: E731
    tasks = tasks._replace(support=(rand(tasks.support[0], 1), tasks.support[1]), query=(rand(tasks.query[0], 2), tasks.query[1]))
    lv = metabench.make_learner("protonet", env, channels=8, meta_batch=3, episode_map="vmap")
    lr = metabench.make_learner("protonet", env, channels=8, meta_batch=3, episode_map="reshape")
    params = lv.init(jax.random.key(0)).params
    gv = jax.jit(jax.grad(lambda p: lv.loss(p, tasks)[0]))(params)
    gr = jax.jit(jax.grad(lambda p: lr.loss(p, tasks)[0]))(params)
    for a, b in zip(leaves(gv), leaves(gr)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # folding episodes must keep per-episode batch norm: loss of the batch == mean of single-episode losses
    loss = jax.jit(lambda p, t: lr.loss(p, t)[0])
    single = [loss(params, jax.tree_util.tree_map(lambda x: x[i : i + 1], tasks)) for i in range(3)]
    np.testing.assert_allclose(loss(params, tasks), np.mean(single), rtol=1e-5)


@pytest.mark.parametrize("learner_id", ["protonet", "protonet-cosine"])
def test_training_reduces_loss(env, learner_id):
    learner = metabench.make_learner(learner_id, env, channels=16, meta_batch=2)
    assert learner.config.distance == ("cosine" if learner_id.endswith("cosine") else "euclidean")
    state = learner.init(jax.random.key(0))
    step = jax.jit(learner.meta_train_step)
    sample = env.jit_sample_tasks(2)
    key, losses = jax.random.key(1), []
    for _ in range(25):
        key, k1, k2 = jax.random.split(key, 3)
        state, m = step(state, sample(k1), k2)
        losses.append(float(m["loss"]))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_lr_halving_schedule_is_applied_by_the_optimizer(env):
    """``lr_halve_every=N``: rate lr for steps 0..N-1, lr/2 for N..2N-1 (Snell et al.); 0 keeps it constant."""
    learner = metabench.make_learner("protonet", env, channels="4", lr="0.01", lr_halve_every="2")
    np.testing.assert_allclose([float(learner.lr_schedule(i)) for i in range(5)], [0.01, 0.01, 0.005, 0.005, 0.0025])
    # the optimizer follows it: same gradients through it and through constant-rate Adam;
    # the first two updates are equal, the third is exactly half as large
    import optax

    params = learner.init(jax.random.key(0)).params
    grads = [jax.tree_util.tree_map(lambda x, k=k: jnp.full_like(x, 0.1 * (k + 1)) * jnp.sign(x + 1e-3), params)
             for k in range(3)]
    ref = optax.adam(0.01)
    s_sched, s_ref = learner.optimizer.init(params), ref.init(params)
    for k, g in enumerate(grads):
        u_sched, s_sched = learner.optimizer.update(g, s_sched, params)
        u_ref, s_ref = ref.update(g, s_ref, params)
        factor = 1.0 if k < 2 else 0.5
        for a, b in zip(leaves(u_sched), leaves(u_ref)):
            np.testing.assert_allclose(a, factor * b, rtol=1e-6, atol=1e-9)
    constant = metabench.make_learner("protonet", env, channels="4", lr="0.01")
    assert float(constant.lr_schedule(10_000)) == 0.01
    with pytest.raises(ConfigError, match="lr_halve_every"):
        metabench.make_learner("protonet", env, lr_halve_every="-1")
