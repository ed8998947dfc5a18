"""Gradient estimators of seed 000 (ES-ProtoNet), section II-G: WSR and finite differences.

Both estimate an *ascent* direction on a fitness ``F`` (the seed uses the negative
few-shot cross-entropy) over a flat meta-parameter vector ``mu: float32[D]``.

WSR, "weighted standard rewards", eqs. (7)-(9)::

    x_i = mu + eps_i,  eps_i ~ N(0, sigma^2 I)                        (7), (8)
    g   = 1/n sum_i (F(x_i) - F(m)) / sigma' * eps_i                  (9)

Eq. (8) writes ``N(0, sigma)`` and section II-C calls sigma "the standard deviation"
of the search distribution, so ``sigma`` *scales* the noise (``eps = sigma * z``, z
standard normal). ``F(m)`` is the mean reward and ``sigma'`` the standard deviation of
the rewards (population standard deviation, ddof = 0). Eq. (9) has no ``1/sigma``
factor; we follow it exactly, so ``g`` is ``sigma`` times the standardised-reward
search gradient and the step size ``alpha`` absorbs the scale (the seed's pairs
alpha/sigma = 1/0.01 and 10/0.1, Table II, keep ``alpha * sigma`` per unit noise).

Finite differences (same section): population = D + 1; candidate ``0`` is ``mu``
itself and candidate ``j + 1`` nudges parameter ``j`` by ``+h`` (``h = sigma_FD =
0.001``). ``F(mu)`` replaces ``F(m)`` and ``h`` replaces ``sigma'`` in eq. (9). Taken
literally that sum equals ``h / n`` times the forward-difference gradient; we return
the forward-difference gradient ``g_j = (F(mu + h e_j) - F(mu)) / h`` itself (the
constant ``h / n`` would only rescale the learning rate), so ``g`` approximates
``grad F`` to O(h). Candidates with index > D (padding to fill a mesh) are ``mu`` and
carry zero weight.

Mirrored sampling (``antithetic=True``; off by default, the seed's eq. (8) draws every
``eps_i`` independently): candidates ``2k`` and ``2k + 1`` get ``+eps_k`` and ``-eps_k``
(Salimans et al. 2017, section 2.2 -- the seed's reference [23], whose distributed ES it
builds on). Eq. (9) is unchanged; per pair it becomes ``(F(mu + eps) - F(mu - eps)) /
sigma' * eps / n``, a central difference along ``eps``, which removes the variance that
the fitness mean contributes. Population (and, in local mode, each shard's share) must be even.

Every candidate's noise is regenerated from ``fold_in(noise_key, i)`` with its *global*
index ``i``: no noise is ever sent between devices, and the population does not depend
on how it is split over devices. All candidates are evaluated with the same fitness key
(common random numbers), so their fitness differences come from the parameters only.

This module holds the per-shard computation; ``metabench.baselines.es.mesh`` runs it
under ``shard_map`` (axis ``pop``) or directly on one device (``axis=None``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metabench.errors import ConfigError

#: ``fitness(params_flat: float32[D], tasks, key) -> float32[]`` (higher is better).
FitnessFn = Callable[[jax.Array, Any, jax.Array], jax.Array]

METHODS = ("wsr", "fd")
MODES = ("local", "global")


@dataclasses.dataclass(frozen=True)
class Estimator:
    """Static description of a gradient estimator (hashable: safe as a jit static argument).

    method: ``"wsr"`` (eq. 9) or ``"fd"`` (finite differences).
    population: total number of candidates ``n`` over all devices.
    sigma: WSR noise standard deviation (eq. 8); must be > 0.
    fd_step: finite-difference nudge ``sigma_FD`` (seed: 0.001); must be > 0.
    mode: ``"local"``: every shard standardises with its own fitness mean/std and the
        per-shard estimates are averaged by one all-reduce (the seed, section II-F);
        ``"global"``: fitness values are all-gathered and standardised together, so the
        result does not depend on the number of devices.
    antithetic: mirrored pairs ``+eps_k, -eps_k`` (see the module docstring); WSR only.
    candidate_batch: ``0``: all of a shard's candidates are evaluated in one ``vmap``;
        ``k > 0``: ``lax.map`` in batches of ``k`` (lower peak memory; ``1`` is needed when
        the fitness itself differentiates through convolutions, e.g. MAML's inner loop,
        whose batched-kernel transpose XLA does not implement).
    """

    method: str = "wsr"
    population: int = 64
    sigma: float = 0.01
    fd_step: float = 1e-3
    mode: str = "local"
    candidate_batch: int = 0
    antithetic: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown ES estimator {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown standardisation mode {self.mode!r}; choose 'local' or 'global'")
        if self.candidate_batch < 0:
            raise ConfigError(f"candidate_batch must be >= 0 (0 = vmap all), got {self.candidate_batch}")
        if not self.population >= 1:
            raise ConfigError(f"population must be a positive integer, got {self.population}")
        if self.method == "wsr":
            if not self.sigma > 0:  # also rejects NaN
                raise ConfigError(f"sigma must be > 0 (the noise standard deviation of eq. 8), got {self.sigma}")
            if self.population < 2:
                raise ConfigError(f"WSR needs population >= 2 to standardise fitness, got {self.population}")
            if self.antithetic and self.population % 2:
                raise ConfigError(
                    f"antithetic (mirrored) sampling pairs candidates, so the population must be even, "
                    f"got {self.population}"
                )
        if self.method == "fd" and self.antithetic:
            raise ConfigError("antithetic sampling applies to WSR only; finite differences nudge one parameter each")
        if self.method == "fd" and not self.fd_step > 0:
            raise ConfigError(f"fd_step must be > 0 (the seed uses 0.001), got {self.fd_step}")

    def check_dim(self, dim: int) -> None:
        """Finite differences need one candidate per parameter plus the unperturbed one."""
        if self.method == "fd" and self.population < dim + 1:
            raise ConfigError(
                f"finite differences need population >= number of parameters + 1 = {dim + 1}, "
                f"got population={self.population}; raise the population or use method='wsr'"
            )


class ShardResult(NamedTuple):
    """Output of one shard (already combined over the ``pop`` axis when one is given).

    grad: float32[D] ascent direction on the fitness, identical on every shard.
    fitness_mean: float32[] mean fitness over the candidates whose fitness is finite
        (``local`` mode: mean of the shard means); NaN if none is.
    fitness_std: float32[] their standard deviation (``local`` mode: mean of shard stds).
    finite: bool[] every candidate's fitness and the gradient are finite.
    """

    grad: jax.Array
    fitness_mean: jax.Array
    fitness_std: jax.Array
    finite: jax.Array


def perturbation(est: Estimator, noise_key: jax.Array, index: jax.Array, dim: int) -> jax.Array:
    """``eps_i: float32[D]`` of candidate ``index`` (global index), eqs. (7)-(8) or the FD nudge."""
    if est.method == "wsr":
        if est.antithetic:  # pair k = (2k, 2k + 1) shares +eps_k / -eps_k
            sign = jnp.where(index % 2 == 0, 1.0, -1.0).astype(jnp.float32)
            return sign * est.sigma * jax.random.normal(jax.random.fold_in(noise_key, index // 2), (dim,), jnp.float32)
        return est.sigma * jax.random.normal(jax.random.fold_in(noise_key, index), (dim,), jnp.float32)
    valid = (index >= 1) & (index <= dim)
    return jnp.where(valid, est.fd_step, 0.0) * jax.nn.one_hot(index - 1, dim, dtype=jnp.float32)


def standardise(fitness: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """``(F - F(m)) / sigma'`` of eq. (9); zero when every fitness is equal; NaN propagates."""
    safe = jnp.where(std > 0, std, 1.0)
    return (fitness - mean) / safe


def finite_stats(fitness: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(mean, std, count)`` over the finite entries of ``fitness: float32[n]`` (for metrics)."""
    ok = jnp.isfinite(fitness)
    count = jnp.sum(ok).astype(jnp.float32)
    mean = jnp.sum(jnp.where(ok, fitness, 0.0)) / jnp.maximum(count, 1.0)
    var = jnp.sum(jnp.where(ok, (fitness - mean) ** 2, 0.0)) / jnp.maximum(count, 1.0)
    nan = jnp.float32(jnp.nan)
    return jnp.where(count > 0, mean, nan), jnp.where(count > 0, jnp.sqrt(var), nan), count


def evaluate(
    fitness_fn: FitnessFn, mu: jax.Array, eps: jax.Array, tasks: Any, key: jax.Array, batch: int = 0
) -> jax.Array:
    """``F(mu + eps_i)`` for every row of ``eps: float32[n, D]`` -> float32[n].

    ``batch=0``: one vmap; ``batch=k``: ``lax.map`` over chunks of ``k`` candidates.
    """
    f = lambda e: fitness_fn(mu + e, tasks, key)  # noqa: E731
    if batch == 0 or batch >= eps.shape[0]:
        return jax.vmap(f)(eps)
    return jax.lax.map(f, eps, batch_size=batch if batch > 1 else None)


def shard_estimate(
    est: Estimator,
    fitness_fn: FitnessFn,
    mu: jax.Array,
    tasks: Any,
    key: jax.Array,
    indices: jax.Array,
    axis: str | None = None,
) -> ShardResult:
    """Gradient estimate from the candidates ``indices: int32[n_local]`` of one shard.

    With ``axis=None`` this is the single-device estimator (``indices = arange(n)``).
    Under ``shard_map`` over ``axis``, the collectives are: WSR local mode, one pmean of
    ``[grad, mean, std, finite]`` packed in one vector; WSR global mode, one all_gather of
    the fitness values and one psum of the gradient; FD, one all_gather (to read F(mu),
    candidate 0) and one psum of the disjoint per-shard gradients.
    """
    dim = mu.shape[0]
    n_local = indices.shape[0]
    noise_key, fit_key = jax.random.split(key)
    eps = jax.vmap(lambda i: perturbation(est, noise_key, i, dim))(indices)  # [n_local, D]
    fitness = evaluate(fitness_fn, mu, eps, tasks, fit_key, est.candidate_batch)  # [n_local]

    def gather(x: jax.Array) -> jax.Array:
        return x if axis is None else jax.lax.all_gather(x, axis, tiled=True)

    def psum(x: jax.Array) -> jax.Array:
        return x if axis is None else jax.lax.psum(x, axis)

    if est.method == "wsr" and est.mode == "local":
        mean, std = jnp.mean(fitness), jnp.std(fitness)  # NaN-propagating: a NaN makes grad NaN
        grad = standardise(fitness, mean, std) @ eps / n_local
        m_ok, s_ok, count = finite_stats(fitness)
        has = (count > 0).astype(jnp.float32)
        # metrics: shards without a finite candidate contribute 0 and are divided out below
        packed = jnp.concatenate([grad, jnp.stack([jnp.nan_to_num(m_ok) * has, jnp.nan_to_num(s_ok) * has, has])])
        if axis is not None:  # the seed's single all-reduce of per-core estimates (II-F)
            packed = jax.lax.pmean(packed, axis)
        grad, shards_ok = packed[:dim], packed[dim + 2]
        safe = jnp.where(shards_ok > 0, shards_ok, 1.0)
        m_ok = jnp.where(shards_ok > 0, packed[dim] / safe, jnp.nan)
        s_ok = jnp.where(shards_ok > 0, packed[dim + 1] / safe, jnp.nan)
        finite = jnp.all(jnp.isfinite(grad))
        if axis is None:
            finite = finite & jnp.all(jnp.isfinite(fitness))
        return ShardResult(grad, m_ok, s_ok, finite)

    all_fitness = gather(fitness)  # [n_total]
    mean, std = jnp.mean(all_fitness), jnp.std(all_fitness)
    m_ok, s_ok, _ = finite_stats(all_fitness)
    if est.method == "wsr":  # global standardisation
        grad = psum(standardise(fitness, mean, std) @ eps / est.population)
    else:
        f0 = all_fitness[0]  # candidate 0 is the unperturbed mu
        valid = (indices >= 1) & (indices <= dim)
        weights = jnp.where(valid, (fitness - f0) / est.fd_step, 0.0)
        grad = psum(jnp.zeros(dim, jnp.float32).at[jnp.clip(indices - 1, 0, dim - 1)].add(weights))
    finite = jnp.all(jnp.isfinite(all_fitness)) & jnp.all(jnp.isfinite(grad))
    return ShardResult(grad, m_ok, s_ok, finite)


def estimate(est: Estimator, fitness_fn: FitnessFn, mu: jax.Array, tasks: Any, key: jax.Array) -> ShardResult:
    """Single-device estimate over the whole population (the reference for the sharded one)."""
    est.check_dim(mu.shape[0])
    return shard_estimate(est, fitness_fn, mu, tasks, key, jnp.arange(est.population, dtype=jnp.int32))
