"""WSR (seed 000 eq. 7-9) and finite-difference estimators on quadratics, single device."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabench.baselines.es.estimators import Estimator, estimate, perturbation, standardise
from metabench.errors import ConfigError

DIM = 6
A = jnp.diag(jnp.linspace(0.5, 3.0, DIM))
C = jnp.linspace(-1.0, 1.0, DIM)


def quad_fitness(p: jax.Array, tasks: object, key: jax.Array) -> jax.Array:
    """F(p) = -1/2 (p - c)^T A (p - c); grad F = A (c - p)."""
    d = p - C
    return -0.5 * d @ A @ d


def true_grad(mu: jax.Array) -> jax.Array:
    return A @ (C - mu)


def cosine(a: jax.Array, b: jax.Array) -> float:
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


@pytest.mark.parametrize("mode", ["local", "global"])
def test_wsr_correlates_with_true_gradient(mode: str) -> None:
    mu = jnp.zeros(DIM)
    est = Estimator("wsr", population=512, sigma=0.05, mode=mode)
    g = estimate(est, quad_fitness, mu, None, jax.random.key(0)).grad
    assert cosine(g, true_grad(mu)) > 0.9
    # a small population is noisier but still positively correlated on average over keys
    small = Estimator("wsr", population=16, sigma=0.05, mode=mode)
    cos = [cosine(estimate(small, quad_fitness, mu, None, jax.random.key(k)).grad, true_grad(mu)) for k in range(8)]
    assert np.mean(cos) > 0.3


def test_wsr_matches_eq9_by_hand() -> None:
    """g = 1/n sum_i (F_i - mean F) / std F * eps_i with eps_i = sigma * z_i (no 1/sigma)."""
    mu = jnp.full(DIM, 0.3)
    est = Estimator("wsr", population=8, sigma=0.1)
    key = jax.random.key(3)
    noise_key, _ = jax.random.split(key)
    eps = np.stack([np.asarray(perturbation(est, noise_key, jnp.int32(i), DIM)) for i in range(8)])
    z = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(noise_key, i), (DIM,))) for i in range(8)])
    np.testing.assert_allclose(eps, 0.1 * z, rtol=1e-6)  # sigma scales the noise (eq. 8)
    f = np.array([float(quad_fitness(mu + e, None, None)) for e in eps])
    expect = ((f - f.mean()) / f.std()) @ eps / 8
    got = estimate(est, quad_fitness, mu, None, key).grad
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-6)


def test_fd_matches_analytic_gradient() -> None:
    mu = C + 0.05 * jnp.arange(DIM)  # near the optimum: small fitness, little float32 cancellation
    est = Estimator("fd", population=DIM + 1, fd_step=1e-3)
    g = estimate(est, quad_fitness, mu, None, jax.random.key(0)).grad
    np.testing.assert_allclose(g, true_grad(mu), atol=2e-3)
    # padding candidates beyond D + 1 carry no weight
    padded = estimate(Estimator("fd", population=DIM + 5), quad_fitness, mu, None, jax.random.key(0)).grad
    np.testing.assert_array_equal(padded, g)


def test_fd_population_too_small() -> None:
    with pytest.raises(ConfigError, match="number of parameters \\+ 1 = 7"):
        estimate(Estimator("fd", population=DIM), quad_fitness, jnp.zeros(DIM), None, jax.random.key(0))


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan")])
def test_sigma_must_be_positive(sigma: float) -> None:
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        Estimator("wsr", population=8, sigma=sigma)


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="unknown ES estimator"):
        Estimator("cmaes")
    with pytest.raises(ConfigError, match="standardisation mode"):
        Estimator(mode="both")
    with pytest.raises(ConfigError, match="fd_step"):
        Estimator("fd", population=8, fd_step=0.0)
    with pytest.raises(ConfigError, match="population >= 2"):
        Estimator("wsr", population=1)


@pytest.mark.parametrize("method", ["wsr", "fd"])
def test_deterministic_and_key_dependent(method: str) -> None:
    est = Estimator(method, population=16, sigma=0.1)
    mu = jnp.zeros(DIM)
    a = jax.jit(lambda k: estimate(est, quad_fitness, mu, None, k).grad)
    g1, g2 = a(jax.random.key(7)), a(jax.random.key(7))
    np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))
    g3 = a(jax.random.key(8))
    if method == "wsr":
        assert not np.array_equal(np.asarray(g1), np.asarray(g3))
    else:  # FD does not sample
        np.testing.assert_array_equal(np.asarray(g1), np.asarray(g3))


def test_candidate_batch_gives_same_estimate() -> None:
    mu = jnp.zeros(DIM)
    base = estimate(Estimator("wsr", population=12, sigma=0.1), quad_fitness, mu, None, jax.random.key(1)).grad
    for batch in (1, 4):
        est = Estimator("wsr", population=12, sigma=0.1, candidate_batch=batch)
        np.testing.assert_allclose(estimate(est, quad_fitness, mu, None, jax.random.key(1)).grad, base, rtol=1e-5)


def test_nan_fitness_is_reported_not_raised() -> None:
    def nan_fitness(p: jax.Array, tasks: object, key: jax.Array) -> jax.Array:
        return jnp.where(p[0] > 0, jnp.nan, quad_fitness(p, tasks, key))

    for mode in ("local", "global"):
        est = Estimator("wsr", population=16, sigma=0.1, mode=mode)
        r = estimate(est, nan_fitness, jnp.zeros(DIM), None, jax.random.key(0))
        assert not bool(r.finite)
        assert bool(jnp.isfinite(r.fitness_mean))  # metrics use the finite candidates only
    ok = estimate(Estimator("wsr", population=16, sigma=0.1), quad_fitness, jnp.zeros(DIM), None, jax.random.key(0))
    assert bool(ok.finite)


def test_standardise_constant_fitness_is_zero_and_nan_propagates() -> None:
    f = jnp.ones(4)
    np.testing.assert_array_equal(standardise(f, jnp.mean(f), jnp.std(f)), jnp.zeros(4))
    g = jnp.array([1.0, jnp.nan, 2.0])
    assert bool(jnp.all(jnp.isnan(standardise(g, jnp.mean(g), jnp.std(g)))))


def test_antithetic_pairs_are_mirrored_and_match_eq9_by_hand() -> None:
    """Candidates 2k, 2k+1 get +eps_k, -eps_k; the estimate is still eq. (9) over them."""
    mu = jnp.full(DIM, 0.3)
    est = Estimator("wsr", population=8, sigma=0.1, antithetic=True)
    key = jax.random.key(3)
    noise_key, _ = jax.random.split(key)
    eps = np.stack([np.asarray(perturbation(est, noise_key, jnp.int32(i), DIM)) for i in range(8)])
    np.testing.assert_array_equal(eps[0::2], -eps[1::2])
    z = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(noise_key, k), (DIM,))) for k in range(4)])
    np.testing.assert_allclose(eps[0::2], 0.1 * z, rtol=1e-6)
    f = np.array([float(quad_fitness(mu + e, None, None)) for e in eps])
    expect = ((f - f.mean()) / f.std()) @ eps / 8
    got = estimate(est, quad_fitness, mu, None, key).grad
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["local", "global"])
def test_antithetic_sampling_reduces_the_estimate_error(mode: str) -> None:
    """Near the optimum the curvature term (even in eps) swamps the plain estimate; mirrored
    pairs cancel it exactly on a quadratic (F(mu + eps) - F(mu - eps) = 2 grad . eps)."""
    mu = C + 0.1
    truth = true_grad(mu)

    def mean_cos(antithetic: bool) -> float:
        est = Estimator("wsr", population=16, sigma=0.2, mode=mode, antithetic=antithetic)
        return float(np.mean([cosine(estimate(est, quad_fitness, mu, None, jax.random.key(k)).grad, truth) for k in range(16)]))

    plain, mirrored = mean_cos(False), mean_cos(True)
    assert mirrored > plain + 0.1, (plain, mirrored)  # measured 0.56 -> 0.74


def test_antithetic_needs_an_even_wsr_population() -> None:
    with pytest.raises(ConfigError, match="must be even"):
        Estimator("wsr", population=7, antithetic=True)
    with pytest.raises(ConfigError, match="WSR only"):
        Estimator("fd", population=DIM + 1, antithetic=True)
