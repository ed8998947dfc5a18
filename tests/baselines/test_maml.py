"""MAML: second-order meta-gradients against float64 central differences (batch norm included),
first order against eq. 3.7, mean/sum (eq. 3.8/3.3), config resolution, training on sinusoid."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest


import metabench
from metabench.baselines._synthetic import synthetic_env
from metabench.baselines.backbones import supervised_loss
from metabench.errors import ConfigError

tmap = jax.tree_util.tree_map


def _f64(tree):
    return tmap(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _directions(params, key, n):
    out = []
    for k in jax.random.split(key, n):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        ks = jax.random.split(k, len(leaves))
        v = [jax.random.normal(kk, l.shape, jnp.float64) for kk, l in zip(ks, leaves)]
        norm = jnp.sqrt(sum(jnp.sum(x * x) for x in v))
        out.append(jax.tree_util.tree_unflatten(treedef, [x / norm for x in v]))
    return out


def _image_env():
    return synthetic_env(5, 1, 3, classes=25, per_class=6, size=16)


def _setups():
    """(name, learner kwargs, env) for a tiny Conv-4 (16x16, 4 channels, batch norm) and the MLP."""
    return [
        # grey images: pool="auto" resolves to Finn et al.'s strided Conv-4
        ("conv4", dict(channels=4, inner_steps=2, inner_lr=0.1, meta_batch=2), _image_env()),
        pytest.param(
            "conv4-maxpool",
            dict(channels=4, inner_steps=2, inner_lr=0.1, meta_batch=2, pool="max"),
            _image_env(),
            marks=pytest.mark.slow,
        ),
        ("mlp", dict(inner_steps=2, inner_lr=0.01, meta_batch=3), metabench.make("sinusoid-5s")),
    ]


@pytest.mark.parametrize("name,kw,env", _setups(), ids=lambda v: v if isinstance(v, str) else "")
def test_second_order_meta_gradient_matches_central_differences(name, kw, env):
    learner = metabench.make_learner("maml", env, **kw)
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), learner.config.meta_batch)
    with jax.enable_x64(True):
        params, tasks64 = _f64(state.params), _f64(tasks)
        if name == "mlp":  # move away from the tiny init so second-order terms are not negligible
            params = tmap(lambda p: p * 30.0 + 0.1, params)
        f = jax.jit(lambda p: learner.meta_loss(p, tasks64)[0])
        g = jax.jit(lambda p: learner.meta_grad(p, tasks64)[0])(params)
        assert all(l.dtype == jnp.float64 for l in jax.tree_util.tree_leaves(g))
        fo = dataclasses.replace(learner.config, first_order=True)
        g_fo = jax.jit(lambda p: type(learner)(env, fo).meta_grad(p, tasks64)[0])(params)
        eps = 1e-5
        for v in _directions(params, jax.random.key(2), 4):
            fd = (f(tmap(lambda p, d: p + eps * d, params, v)) - f(tmap(lambda p, d: p - eps * d, params, v))) / (2 * eps)
            ad = _dot(g, v)
            assert abs(float(ad - fd)) <= 1e-6 * max(abs(float(fd)), 1e-3), (name, float(ad), float(fd))
            # first order is a different (approximate) gradient: it must be visibly off
            assert abs(float(_dot(g_fo, v) - fd)) > 1e3 * abs(float(ad - fd))


@pytest.mark.parametrize("name,kw,env", _setups(), ids=lambda v: v if isinstance(v, str) else "")
def test_first_order_equals_eq_3_7(name, kw, env):
    """FOMAML meta-gradient == mean_i grad L_i^query evaluated at the adapted parameters theta'_i."""
    learner = metabench.make_learner("maml-fo", env, **kw)
    c = learner.config
    state = learner.init(jax.random.key(3))
    tasks = env.sample_tasks(jax.random.key(4), c.meta_batch)
    with jax.enable_x64(True):
        params, tasks64 = _f64(state.params), _f64(tasks)
        got = jax.jit(lambda p: learner.meta_grad(p, tasks64)[0])(params)
        kind = env.spec.kind

        def manual(i):
            sx, sy = tmap(lambda a: a[i], tasks64.support)
            qx, qy = tmap(lambda a: a[i], tasks64.query)
            loss = lambda p, x, y: supervised_loss(kind, learner.model.apply(p, x), y)  # noqa: E731
            p = params
            for _ in range(c.inner_steps):
                p = tmap(lambda a, b: a - c.inner_lr * b, p, jax.grad(loss)(p, sx, sy))
            return jax.grad(loss)(p, qx, qy)

        want = jax.jit(lambda: tmap(lambda *gs: sum(gs) / len(gs), *[manual(i) for i in range(c.meta_batch)]))()
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_sum_is_meta_batch_times_mean():
    env = metabench.make("sinusoid-5s")
    mean = metabench.make_learner("maml", env, meta_batch=4)
    summ = metabench.make_learner("maml", env, meta_batch=4, meta_reduce="sum")
    state = mean.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), 4)
    gm = jax.jit(lambda p: mean.meta_grad(p, tasks)[0])(state.params)
    gs = jax.jit(lambda p: summ.meta_grad(p, tasks)[0])(state.params)
    for a, b in zip(jax.tree_util.tree_leaves(gm), jax.tree_util.tree_leaves(gs)):
        np.testing.assert_allclose(4 * np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="meta_reduce"):
        metabench.make_learner("maml", env, meta_reduce="median")


@pytest.mark.slow
def test_scan_map_and_unrolled_variants_agree():
    env = _image_env()
    base = dict(channels=4, inner_steps=2, meta_batch=2)
    ref = metabench.make_learner("maml", env, **base)
    state = ref.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), 2)
    g0 = jax.jit(lambda p: ref.meta_grad(p, tasks)[0])(state.params)
    for extra in (dict(inner_scan=True), dict(task_map="map"), dict(task_map="vmap")):
        other = metabench.make_learner("maml", env, **base, **extra)
        g1 = jax.jit(lambda p: other.meta_grad(p, tasks)[0])(state.params)
        for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-6)


def test_jitted_meta_loss_matches_eager():
    """Guards against miscompiled pooling forms (see backbones.max_pool2): jit(meta_loss) == eager."""
    env = _image_env()
    learner = metabench.make_learner("maml", env, channels=4, inner_steps=1, inner_lr=0.1, meta_batch=2)
    params = learner.init(jax.random.key(0)).params
    tasks = env.sample_tasks(jax.random.key(1), 2)
    np.testing.assert_allclose(
        learner.meta_loss(params, tasks)[0], jax.jit(lambda p: learner.meta_loss(p, tasks)[0])(params), rtol=1e-5
    )


def test_config_resolution_and_string_overrides():
    sin = metabench.make("sinusoid-10s")
    c = metabench.make_learner("maml", sin).config
    assert (c.inner_lr, c.inner_steps, c.eval_steps, c.meta_batch, c.meta_lr) == (0.01, 1, 10, 25, 1e-3)
    c = metabench.make_learner("maml", sin, inner_steps="3", inner_lr="0.05", first_order="true").config
    assert (c.inner_steps, c.inner_lr, c.first_order, c.eval_inner_lr) == (3, 0.05, True, 0.05)
    assert metabench.make_learner("maml-fo", sin).config.first_order is True
    img = _image_env()
    c = metabench.make_learner("maml", img, channels=4).config
    assert (c.inner_lr, c.inner_steps, c.eval_steps, c.meta_batch, c.task_map) == (0.4, 1, 3, 32, "unroll")
    assert metabench.make_learner("maml", sin).config.task_map == "vmap"
    with pytest.raises(ConfigError, match="inner_step"):
        metabench.make_learner("maml", sin, inner_stpes=2)


def test_shapes_determinism_and_eval_curve():
    env = _image_env()
    learner = metabench.make_learner("maml", env, channels=4, meta_batch=2, eval_steps=4)
    s1, s2 = learner.init(jax.random.key(7)), learner.init(jax.random.key(7))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(s2)))
    tasks = env.sample_tasks(jax.random.key(1), 2)
    step = jax.jit(learner.meta_train_step)
    a, ma = step(s1, tasks, jax.random.key(0))
    b, mb = step(s2, tasks, jax.random.key(0))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert set(ma) == {"loss", "accuracy"} and int(a.step) == 1
    task = tmap(lambda x: x[0], tasks)
    curve = jax.jit(learner.eval_curve)(a, task, jax.random.key(0))
    assert curve.shape == (5,) and curve.dtype == jnp.float32
    assert bool(jnp.all((curve >= 0) & (curve <= 1)))
    logits = jax.jit(lambda s, t: learner.predict(s, learner.adapt(s, t.support, jax.random.key(0)), t.query[0]))(a, task)
    assert logits.shape == (15, 5)
    # the curve's last entry is the accuracy of adapt + predict
    np.testing.assert_allclose(curve[-1], jnp.mean(jnp.argmax(logits, -1) == task.query[1]), atol=1e-6)


def test_training_reduces_sinusoid_loss():
    env = metabench.make("sinusoid-10s")
    learner = metabench.make_learner("maml", env)
    state = learner.init(jax.random.key(0))
    step = jax.jit(learner.meta_train_step)
    sample = env.jit_sample_tasks(25)
    evals = env.eval_tasks("val", 0, 50)
    curve = jax.jit(jax.vmap(learner.eval_curve, (None, 0, None)))
    before = curve(state, evals, jax.random.key(0)).mean(0)
    key = jax.random.key(1)
    for _ in range(1000):
        key, k1, k2 = jax.random.split(key, 3)
        state, _ = step(state, sample(k1), k2)
    after = curve(state, evals, jax.random.key(0)).mean(0)
    assert after.shape == (11,)
    assert float(after[-1]) < 0.8 * float(before[-1])
    assert float(after[-1]) < float(after[0])  # adaptation helps after meta-training


def test_training_reduces_classification_loss():
    env = synthetic_env(5, 5, 5, classes=30, per_class=10, size=16)
    learner = metabench.make_learner("maml-fo", env, channels=8, meta_batch=4, meta_lr=0.01, inner_lr=0.1)
    state = learner.init(jax.random.key(0))
    step = jax.jit(learner.meta_train_step)
    sample = env.jit_sample_tasks(4)
    key, losses = jax.random.key(1), []
    for _ in range(40):
        key, k1, k2 = jax.random.split(key, 3)
        state, m = step(state, sample(k1), k2)
        losses.append(float(m["loss"]))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
