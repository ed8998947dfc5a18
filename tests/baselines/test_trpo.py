"""TRPO step (baselines/_trpo.py) and its use as MAML-RL's outer step (Finn et al. 2017)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import metabench
import metabench.baselines  # noqa: F401  (registers the learners)
from metabench.baselines._trpo import conjugate_gradient, finite_difference_hvp, trpo_step
from metabench.errors import ConfigError
from metabench.learner import make_learner

D = 5
F = jnp.asarray(np.diag([0.5, 1.0, 2.0, 4.0, 8.0]) + 0.1, jnp.float32)  # SPD "Fisher"
G = jnp.asarray([1.0, -2.0, 0.5, 0.0, 3.0], jnp.float32)


def test_conjugate_gradient_solves_an_spd_system():
    x, r = conjugate_gradient(lambda v: F @ v, G, iters=D)
    np.testing.assert_allclose(r, G - F @ x, atol=1e-5)
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(F, np.float64), np.asarray(G, np.float64)), rtol=1e-4)


def test_conjugate_gradient_early_exit_stops_where_rllab_does():
    """Same solution; with A = c I the residual vanishes after one iteration and the early-exit
    loop makes one product where the fixed loop makes ``iters``."""
    x, r = conjugate_gradient(lambda v: F @ v, G, iters=D, early_exit=True)
    np.testing.assert_allclose(x, conjugate_gradient(lambda v: F @ v, G, iters=D)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r, G - F @ x, atol=1e-5)
    calls = []

    def scaled(v):
        jax.debug.callback(lambda: calls.append(1))
        return 1e-5 * v

    for early, expect in ((True, 1), (False, 10)):
        calls.clear()
        x, r = jax.jit(lambda b, e=early: conjugate_gradient(scaled, b, 10, early_exit=e))(1e-2 * G)
        jax.effects_barrier()
        assert len(calls) == expect
        np.testing.assert_allclose(x, 1e3 * G, rtol=1e-5)


def test_full_step_reaches_the_trust_region_boundary_along_the_natural_gradient():
    """Linear loss; the Fisher F as ``fvp``: the step is -sqrt(2 max_kl / g F^-1 g) F^-1 g, where
    the quadratic model of the KL equals max_kl. The true KL here is 0.9 of that model, so
    the first candidate is accepted (rllab's rule: loss improved and KL <= max_kl)."""
    theta0 = jnp.zeros(D)
    res = trpo_step(lambda t: G @ t, lambda t: 0.45 * t @ F @ t, theta0, fvp=lambda v: F @ v, max_kl=0.01,
                    cg_iters=D, damping=0.0)
    natural = np.linalg.solve(np.asarray(F, np.float64), np.asarray(G, np.float64))
    expect = -np.sqrt(2 * 0.01 / (natural @ np.asarray(G, np.float64))) * natural
    assert bool(res.accepted) and int(res.backtracks) == 0
    np.testing.assert_allclose(res.theta, expect, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(float(res.kl), 0.009, rtol=1e-4)
    assert float(res.loss_after) < float(res.loss_before) == 0.0


def test_line_search_backtracks_until_the_loss_improves():
    """A loss that rises beyond a short distance: the step shrinks by 0.8 until it improves."""
    theta0 = jnp.zeros(D)
    loss = lambda t: G @ t + 20.0 * jnp.sum(t**2)  # noqa: E731  minimum close to theta0
    res = trpo_step(loss, lambda t: 0.5 * t @ F @ t, theta0, max_kl=0.5, cg_iters=D)
    assert bool(res.accepted) and int(res.backtracks) > 0
    assert float(res.loss_after) < float(res.loss_before) and float(res.kl) <= 0.5
    # the previous, longer candidate did not improve the loss
    full = trpo_step(loss, lambda t: 0.5 * t @ F @ t, theta0, max_kl=0.5, cg_iters=D, max_backtracks=int(res.backtracks))
    assert not bool(full.accepted)


def test_no_improving_step_keeps_the_parameters():
    theta0 = jnp.full(D, 0.3)
    res = trpo_step(lambda t: 1.0 + 0.0 * t[0], lambda t: 0.5 * (t - theta0) @ F @ (t - theta0),
                    theta0, max_kl=0.01)
    assert not bool(res.accepted)
    np.testing.assert_array_equal(res.theta, theta0)
    assert float(res.kl) == 0.0 and float(res.loss_after) == float(res.loss_before)


THETA0 = jnp.asarray([0.5, -0.3, 0.7, 0.2, -0.9], jnp.float32)  # no parameter near 0


def _quadratic_kl(t):
    return 0.5 * (t - THETA0) @ F @ (t - THETA0)


def test_finite_difference_hvp_approximates_the_hessian_only_for_large_vectors():
    """rllab's eps = 1e-8 / ||theta||: in float32 a gradient-sized vector moves no parameter (the
    product is exactly 0), a vector 1e8 times larger gives H v to a few percent."""
    hvp = finite_difference_hvp(jax.grad(_quadratic_kl), THETA0)
    small = 1e-2 * G  # the size of a meta-gradient's entries (point-nav: 1e-3 to 1e-2)
    np.testing.assert_array_equal(hvp(small), np.zeros(D, np.float32))
    big = 1e6 * G
    np.testing.assert_allclose(hvp(big), F @ big, rtol=0.05, atol=0.05 * float(jnp.abs(F @ big).max()))


def test_finite_difference_trpo_steps_along_the_plain_gradient():
    """Where the product vanishes at g (scaled to a meta-gradient's size), CG stops at x = g / damping and the fresh product at that
    large x measures the curvature along g: the step is -sqrt(2 max_kl / g F g) g, the plain
    gradient scaled so the KL model equals max_kl (Finn et al.'s MAML-TRPO on a trained policy),
    not the natural gradient of the exact product."""
    kl = lambda t: 0.9 * _quadratic_kl(t)  # noqa: E731  the true KL: 0.9 of the model, so accepted at once
    fd = finite_difference_hvp(jax.grad(_quadratic_kl), THETA0)
    res = trpo_step(lambda t: 1e-2 * G @ t, kl, THETA0, fvp=fd, max_kl=0.01, fresh_curvature=True)
    g = np.asarray(G, np.float64)
    expect = np.asarray(THETA0) - np.sqrt(2 * 0.01 / (g @ np.asarray(F, np.float64) @ g)) * g
    assert bool(res.accepted) and int(res.backtracks) == 0
    np.testing.assert_allclose(res.theta, expect, rtol=0.02, atol=1e-4)
    exact = trpo_step(lambda t: G @ t, kl, THETA0, fvp=lambda v: F @ v, max_kl=0.01)
    cos = lambda a: float(a @ g / np.linalg.norm(a) / np.linalg.norm(g))  # noqa: E731
    assert cos(np.asarray(THETA0 - res.theta)) > 0.9999 > 0.99 > cos(np.asarray(THETA0 - exact.theta))


def test_fresh_curvature_takes_step_size_one_where_the_root_is_nan():
    """rllab: sqrt(2 max_kl / (x . H x)) is NaN for a negative curvature estimate and the step
    size becomes 1 (the loss here improves along any long step, so the full step is accepted)."""
    neg = lambda v: -(F @ v)  # noqa: E731
    loss = lambda t: G @ t - 100.0 * jnp.sum((t - THETA0) ** 2)  # noqa: E731
    zero_kl = lambda t: 0.0 * jnp.sum(t)  # noqa: E731
    x, _ = conjugate_gradient(lambda v: neg(v) + 1e-5 * v, G, 10)
    assert float(x @ (neg(x) + 1e-5 * x)) < 0.0
    res = trpo_step(loss, zero_kl, THETA0, fvp=neg, fresh_curvature=True)
    assert bool(res.accepted) and int(res.backtracks) == 0
    np.testing.assert_allclose(res.theta, THETA0 - x, rtol=1e-6)
    plain = trpo_step(loss, zero_kl, THETA0, fvp=neg)  # a NaN step: rejected, parameters kept
    assert not bool(plain.accepted)
    np.testing.assert_array_equal(plain.theta, THETA0)


@pytest.fixture(scope="module")
def point_nav():
    return metabench.make("point-nav")


def _off_the_kinks(state):
    """Perturb the initial policy: with rllab's zero biases and point-nav's first observation
    (0, 0), every hidden pre-activation at t = 0 is exactly 0, a ReLU kink, and the inner
    step's gradient -- hence the adapted policy, the surrogate and the KL -- jumps under any
    perturbation of theta_0 (measured: KL 0 at theta_0, 0.0029 at theta_0 + 1e-7 v). Trust-region
    steps are meaningful only off such points, which training leaves after its first update."""
    leaves, tree = jax.tree_util.tree_flatten(state.params)
    keys = jax.random.split(jax.random.key(42), len(leaves))
    leaves = [x + 0.05 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return state._replace(params=jax.tree_util.tree_unflatten(tree, leaves))


def _setup(point_nav, **kw):
    """A tiny MAML-RL learner, its initial state and one batch of (pre, post, old_logp, adv) samples."""
    learner = make_learner("maml-rl", point_nav, meta_batch=2, episodes=3, horizon=10, hidden=(8,), **kw)
    state = _off_the_kinks(learner.init(jax.random.key(0)))
    tasks = point_nav.sample_tasks(jax.random.key(1), 2, "train")

    @jax.jit
    def collect(state, tasks, keys):
        pre, post, adapted = jax.vmap(learner._collect_one, (None, 0, 0))(state.params, tasks, keys)
        old, adv = jax.vmap(learner._post_stats_one)(adapted, post)
        return pre, post, old, adv

    return learner, state, collect(state, tasks, jax.random.split(jax.random.key(2), 2))


def _uneven(samples):
    """The samples with task 0's post-update episodes cut to 4 of 10 steps (as if they reached
    the goal early), so the two ``kl_weighting``s weigh the tasks differently."""
    pre, post, old, adv = samples
    mask = post.mask.at[0, :, 4:].set(0.0)
    return pre, post._replace(mask=mask), old, adv * mask


@pytest.mark.parametrize("first_order,kl_weighting", [(False, "task"), (True, "task"), (False, "pooled")])
def test_maml_rl_fisher_vector_product_is_the_hessian_of_the_kl(point_nav, first_order, kl_weighting):
    """The Gauss-Newton product J^T M J v equals the exact Hessian-vector product of the mean
    KL of the adapted policies at theta_0, through the inner step (second order) or not, with
    either weighting of the steps in that mean."""
    learner, state, samples = _setup(point_nav, first_order=first_order, kl_weighting=kl_weighting)
    samples = _uneven(samples)

    @jax.jit
    def products(state, samples, vs):
        flat0, loss, kl, fvp, _ = learner.trpo_problem(state, *samples)
        _, hvp = jax.linearize(jax.grad(kl), flat0)
        return kl(flat0), [fvp(v) for v in vs], [hvp(v) for v in vs], jax.grad(loss)(flat0)

    dim = ravel_pytree(state.params)[0].shape[0]
    vs = [jax.random.normal(jax.random.key(10 + seed), (dim,)) for seed in range(3)]
    kl0, fvps, hvps, g = products(state, samples, vs)
    assert abs(float(kl0)) < 1e-6  # KL to itself
    for a, b in zip(fvps, hvps):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.linalg.norm(a - b) <= 2e-3 * np.linalg.norm(b), (np.linalg.norm(a - b), np.linalg.norm(b))
    assert np.all(np.isfinite(np.asarray(g)))


def test_maml_rl_pooled_kl_weighs_every_valid_step_alike(point_nav):
    """``kl_weighting="pooled"`` (Finn et al.'s ``reduce_mean(concat(kls))``) is the mean KL over
    all tasks' valid steps, i.e. the per-task means weighted by the tasks' step counts;
    ``"task"`` is the plain mean of the per-task means. With even masks the two agree."""
    task, state, samples = _setup(point_nav, kl_weighting="task")
    pooled = make_learner("maml-rl", point_nav, meta_batch=2, episodes=3, horizon=10, hidden=(8,))
    v = jax.random.normal(jax.random.key(6), ravel_pytree(state.params)[0].shape)

    @functools.cache
    def kl_fn(learner):  # jitted: eager, each call took seconds
        def f(state, samples):
            flat0, _, kl, _, _ = learner.trpo_problem(state, *samples)
            return kl(flat0 + 0.05 * v)

        return jax.jit(f)

    def kl_at(learner, samples):
        return float(kl_fn(learner)(state, samples))

    def per_task(samples):  # each task alone (meta-batch of one) under "task" weighting
        return [kl_at(task, jax.tree_util.tree_map(lambda x, i=i: x[i:i + 1], samples)) for i in range(2)]

    pre, post, old, adv = samples
    even_mask = jnp.zeros_like(post.mask).at[:, :, :6].set(1.0)  # 3 x 6 steps in each task
    even = (pre, post._replace(mask=even_mask), old, adv * even_mask)
    np.testing.assert_allclose(kl_at(pooled, even), kl_at(task, even), rtol=1e-5)
    uneven = _uneven(samples)
    k0, k1 = per_task(uneven)
    n0, n1 = (float(uneven[1].mask[i].sum()) for i in range(2))
    assert n0 < n1
    np.testing.assert_allclose(kl_at(task, uneven), (k0 + k1) / 2, rtol=1e-5)
    np.testing.assert_allclose(kl_at(pooled, uneven), (n0 * k0 + n1 * k1) / (n0 + n1), rtol=1e-5)
    assert abs(kl_at(pooled, uneven) - kl_at(task, uneven)) > 1e-3 * kl_at(task, uneven)


def test_maml_rl_trpo_step_improves_the_surrogate_inside_the_trust_region(point_nav):
    learner, state, samples = _setup(point_nav)
    v = jax.random.normal(jax.random.key(5), ravel_pytree(state.params)[0].shape)

    @jax.jit
    def check(state, samples):
        flat0, loss, kl, _, _ = learner.trpo_problem(state, *samples)
        new, out_loss = learner._trpo_update(state, *samples)
        flat_new = ravel_pytree(new.params)[0]
        return new, out_loss, kl(flat0 + 1e-6 * v), kl(flat_new), loss(flat0), loss(flat_new)

    new, out_loss, kl_near, kl_new, loss0, loss_new = check(state, samples)
    again = check(state, samples)[0]
    assert float(kl_near) < 1e-6  # continuous at theta_0 (see _off_the_kinks)
    flat0, flat_new = ravel_pytree(state.params)[0], ravel_pytree(new.params)[0]
    assert int(new.step) == 1 and not np.array_equal(flat_new, flat0)
    assert np.array_equal(ravel_pytree(again.params)[0], flat_new)  # deterministic
    assert float(kl_new) <= learner.config.max_kl * (1 + 1e-4)
    assert float(loss_new) < float(loss0)
    np.testing.assert_allclose(float(out_loss), float(loss_new), rtol=1e-5, atol=1e-7)


def test_maml_rl_finite_difference_trpo_is_a_kl_scaled_gradient_step(point_nav):
    """``hvp="finite_difference"`` (Finn et al.'s code) off the init's kinks: the meta-step is
    along the meta-gradient, improves the surrogate and keeps the KL within max_kl."""
    learner, state, samples = _setup(point_nav, hvp="finite_difference")

    @jax.jit
    def check(state, samples):
        flat0, loss, kl, _, _ = learner.trpo_problem(state, *samples)
        new, _ = learner._trpo_update(state, *samples)
        flat_new = ravel_pytree(new.params)[0]
        return flat0, flat_new, jax.grad(loss)(flat0), kl(flat_new), loss(flat0), loss(flat_new)

    flat0, flat_new, g, kl_new, loss0, loss_new = (np.asarray(a, np.float64) for a in check(state, samples))
    step = flat0 - flat_new
    assert np.linalg.norm(step) > 0 and step @ g / np.linalg.norm(step) / np.linalg.norm(g) > 0.9999
    assert kl_new <= learner.config.max_kl * (1 + 1e-4) and loss_new < loss0


def test_outer_step_options(point_nav):
    assert make_learner("maml-rl", point_nav).config.outer == "trpo"  # Finn et al.
    with pytest.raises(ConfigError, match=r"outer='sgd' is not a choice"):
        make_learner("maml-rl", point_nav, outer="sgd")
    with pytest.raises(ConfigError, match="max_kl > 0"):
        make_learner("maml-rl", point_nav, max_kl=0.0)
    assert make_learner("maml-rl", point_nav).config.hvp == "exact"
    with pytest.raises(ConfigError, match=r"hvp='perlmutter' is not a choice.*'exact', 'finite_difference'"):
        make_learner("maml-rl", point_nav, hvp="perlmutter")
    with pytest.raises(ConfigError, match="TRPO's curvature product, but the outer step is 'ppo'"):
        make_learner("maml-rl", point_nav, hvp="finite_difference", outer="ppo")
    assert make_learner("maml-rl", point_nav).config.kl_weighting == "pooled"  # Finn et al.
    with pytest.raises(ConfigError, match=r"kl_weighting='sum' is not a choice.*'task', 'pooled'"):
        make_learner("maml-rl", point_nav, kl_weighting="sum")
    with pytest.raises(ConfigError, match="weighs TRPO's trust region, but the outer step is 'ppo'"):
        make_learner("maml-rl", point_nav, kl_weighting="pooled", outer="ppo")
