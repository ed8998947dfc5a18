"""Gaussian MLP policy of MAML for RL (Finn et al. 2017, section 5.3; rllab ``GaussianMLPPolicy``).

``mean = MLP(obs)`` (ReLU hidden layers, linear output), a state-independent learned
``log_std`` per action dimension, ``a ~ N(mean, exp(log_std)^2)``. Parameters are a plain
dict pytree ``{"layers": ((w, b), ...), "log_std": float32[A]}`` so MAML's inner loop can
update them with ``tree_map`` and differentiate through the update. Layers use Glorot
(Xavier) uniform weights and zero biases, as rllab does.

``init_policy(..., tanh_mean=True)`` bounds the mean, ``mean = tanh(MLP(obs))`` (rllab's
``GaussianMLPPolicy(output_nonlinearity=tanh)``); the noise is added after it, so it is
measured against a mean inside the unit box everywhere. The choice lives in the pytree's
structure, as a key ``"tanh_mean"`` holding an empty tuple (no parameters, no leaves): the
functions below stay module-level and every policy of one structure shares its compilation.

``init_policy(..., skip=True)`` adds a linear path from the observation to the mean,
``mean = MLP(obs) + SKIP_SCALE * obs @ skip`` (``skip: float32[D, A]``, zeros at first, so
the initial policy is the MLP's). For a target that is linear in the observation and must
be precise far below the MLP's resolution (Nav2d in displacements: ``u = (goal - agent) /
10``, i.e. ``12.75 * (goal_n - agent_n)``, to 0.01 near the goal) the MLP alone was measured
not to get there (``docs/results.md``). ``SKIP_SCALE`` preconditions the path: under Adam
each weight moves about ``meta_lr`` per step whatever its scale, so unscaled weights would
need thousands of meta-steps to reach such gains; with the scale, the skip path's
sensitivity to one plain gradient step (the inner loop's) is ``SKIP_SCALE^2 |obs|^2``, the
same order as the last hidden layer's ``|h|^2`` (about 50 for 100 ReLU units).

The functions are module-level (not closures), so one compiled rollout serves every
policy of the same shapes (``metabench.rollout`` caches on ``policy_apply``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]

#: scale of the linear observation-to-mean path (``skip``, module docstring)
SKIP_SCALE = 10.0


def init_policy(
    key: jax.Array,
    obs_dim: int,
    act_dim: int,
    hidden: tuple[int, ...] = (100, 100),
    log_std: float = 0.0,
    tanh_mean: bool = False,
    skip: bool = False,
) -> Params:
    """Parameters of an ``obs_dim -> hidden... -> act_dim`` Gaussian policy (``tanh_mean``, ``skip``: module docstring)."""
    sizes = (int(obs_dim), *map(int, hidden), int(act_dim))
    layers = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        lim = math.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(k, (n_in, n_out), jnp.float32, -lim, lim)
        layers.append((w, jnp.zeros((n_out,), jnp.float32)))
    params: Params = {"layers": tuple(layers), "log_std": jnp.full((int(act_dim),), log_std, jnp.float32)}
    if tanh_mean:
        params["tanh_mean"] = ()
    if skip:
        params["skip"] = jnp.zeros((int(obs_dim), int(act_dim)), jnp.float32)
    return params


def policy_mean(params: Params, obs: jax.Array) -> jax.Array:
    """``float32[..., A]`` mean action of ``obs: float[..., D]``."""
    h = jnp.asarray(obs, jnp.float32)
    layers = params["layers"]
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = jax.nn.relu(h)
    if "skip" in params:
        h = h + SKIP_SCALE * (jnp.asarray(obs, jnp.float32) @ params["skip"])
    return jnp.tanh(h) if "tanh_mean" in params else h


def sample_action(params: Params, obs: jax.Array, key: jax.Array) -> jax.Array:
    """One action ``float32[A]`` for one observation (the ``policy_apply`` of ``metabench.rollout``)."""
    mean = policy_mean(params, obs)
    return mean + jnp.exp(params["log_std"]) * jax.random.normal(key, mean.shape, jnp.float32)


def log_prob(params: Params, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """``float32[...]``: log-density of ``actions: [..., A]`` taken in ``obs: [..., D]``."""
    mean = policy_mean(params, obs)
    log_std = params["log_std"]
    z = (jnp.asarray(actions, jnp.float32) - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)
