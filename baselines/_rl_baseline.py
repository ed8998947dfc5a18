"""Returns, the linear feature baseline and advantages for policy gradients.

The baseline is rllab's ``LinearFeatureBaseline`` (Duan et al. 2016), which MAML for RL
fits per task on the task's own trajectories (Finn et al. 2017, section 5.3): features
``[clip(obs, -10, 10), clip(obs, -10, 10)^2, t, t^2, t^3, 1]`` with ``t = step / 100``,
weights by ridge least squares on the discounted returns (``reg = 1e-5``, multiplied by
10 until the solution is finite, as rllab does). Advantages ``A = R - b`` are normalised
to zero mean and unit standard deviation over the valid steps of the task (rllab's
``center_adv=True``). Everything works on one task's ``[E, T]`` arrays and is jittable;
steps with ``mask = 0`` (after the episode ended) are excluded everywhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def discounted_returns(rewards: jax.Array, mask: jax.Array, gamma: float) -> jax.Array:
    """``float32[E, T]`` reward-to-go ``R_t = sum_{k >= t} gamma^(k-t) r_k`` (masked rewards)."""
    r = jnp.asarray(rewards, jnp.float32) * mask

    def body(acc, x):
        acc = x + gamma * acc
        return acc, acc

    _, out = jax.lax.scan(body, jnp.zeros(r.shape[:-1], jnp.float32), jnp.moveaxis(r, -1, 0), reverse=True)
    return jnp.moveaxis(out, 0, -1)


def feature_dim(obs_dim: int) -> int:
    """Number of baseline features (and weights) for ``obs_dim``-dimensional observations."""
    return 2 * int(obs_dim) + 4


def features(obs: jax.Array, mask: jax.Array) -> jax.Array:
    """``float32[E, T, feature_dim(D)]`` baseline features of ``obs: [E, T, D]`` (zero where ``mask = 0``)."""
    o = jnp.clip(jnp.asarray(obs, jnp.float32), -10.0, 10.0)
    t = jnp.broadcast_to(jnp.arange(o.shape[-2], dtype=jnp.float32)[:, None] / 100.0, (*o.shape[:-1], 1))
    f = jnp.concatenate([o, o**2, t, t**2, t**3, jnp.ones_like(t)], axis=-1)
    return f * mask[..., None]


def spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """``x`` with ``a x = b`` for a symmetric positive definite ``a: [K, K]`` (Gauss-Jordan, no pivoting).

    Plain XLA ops on purpose: ``jnp.linalg.solve`` lowers to jaxlib's batched LU kernel,
    which, vmapped over tasks, can deadlock the 2-thread XLA CPU pool (both pool threads
    wait in ``ParallelBatchMap`` for work queued behind them; seen with MuJoCo MAML-RL on a
    2-core machine). A singular ``a`` gives non-finite values (``fit_baseline`` retries).
    """
    n = a.shape[0]
    m = jnp.concatenate([a, b[:, None]], axis=1)

    def body(k: jax.Array, m: jax.Array) -> jax.Array:
        row = m[k] / m[k, k]
        m = m - m[:, k][:, None] * row[None, :]
        return m.at[k].set(row)

    return jax.lax.fori_loop(0, n, body, m)[:, -1]


def fit_baseline(feats: jax.Array, returns: jax.Array, mask: jax.Array, reg: float = 1e-5, tries: int = 5) -> jax.Array:
    """Ridge weights ``float32[K]`` of ``feats @ w ~ returns`` on the valid steps."""
    f = feats.reshape(-1, feats.shape[-1])
    y = (returns * mask).reshape(-1)
    a, b = f.T @ f, f.T @ y
    eye = jnp.eye(a.shape[0], dtype=a.dtype)
    sols = [spd_solve(a + reg * 10.0**i * eye, b) for i in range(tries)]
    out = jnp.zeros_like(b)  # nothing finite: no baseline
    for w in reversed(sols):  # the first finite solution wins
        out = jnp.where(jnp.all(jnp.isfinite(w)), w, out)
    return out


def baseline_weights(obs: jax.Array, rewards: jax.Array, mask: jax.Array, gamma: float) -> jax.Array:
    """``float32[feature_dim(D)]``: the linear feature baseline fitted on these trajectories ``[E, T]``."""
    mask = jnp.asarray(mask, jnp.float32)
    feats = features(obs, mask)
    return fit_baseline(feats, discounted_returns(rewards, mask, gamma), mask)


def advantages(obs: jax.Array, rewards: jax.Array, mask: jax.Array, gamma: float, normalize: bool = True,
               weights: jax.Array | None = None) -> jax.Array:
    """``float32[E, T]``: ``R_t - b(s_t)`` with the baseline fitted on these trajectories (constants).

    ``weights`` (``float32[feature_dim(D)]``): use that baseline instead, e.g. one fitted on an
    earlier batch (rllab's older ``process_samples`` predicted with the baseline of the
    previous call and fitted afterwards; zeros: no baseline).
    """
    mask = jnp.asarray(mask, jnp.float32)
    ret = discounted_returns(rewards, mask, gamma)
    feats = features(obs, mask)
    w = fit_baseline(feats, ret, mask) if weights is None else jnp.asarray(weights, jnp.float32)
    adv = (ret - feats @ w) * mask
    if normalize:
        n = jnp.maximum(mask.sum(), 1.0)
        mean = adv.sum() / n
        std = jnp.sqrt((((adv - mean) * mask) ** 2).sum() / n)
        adv = (adv - mean) / (std + 1e-8) * mask
    return jax.lax.stop_gradient(adv)
