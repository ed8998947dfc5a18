"""Batched rollouts of a policy over tasks x episodes (MAML for RL, Finn et al. 2017, Alg. 3).

A *policy* is ``policy_apply(policy_params, obs, key) -> action`` on ONE observation
(``obs: float32[*obs_shape]`` -> ``action: float32[*act_shape]``); the rollout vmaps it.
Sample inside it for a stochastic policy; the learner recomputes log-probabilities
from the returned observations and actions.

>>> traj = rollout(env, policy_apply, theta, task, key, n_episodes=20)   # jittable (JAX envs)
>>> traj.rewards.shape                                                  # (20, env.max_steps)
>>> returns = episode_returns(traj)                                     # float32[20]

JAX envs (``env.functional``): ``lax.scan`` over the horizon, ``vmap`` over episodes
(and over tasks in ``rollout_tasks``); everything jits (``env``, ``policy_apply``,
``n_episodes`` and ``horizon`` static). Host envs (MuJoCo): the same call runs the
env's ``vector_rollout`` (gymnasium vector envs) and returns numpy arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import ConfigError
from metabench.tasks import PRNGKey

PolicyApply = Callable[[Any, jax.Array, PRNGKey], jax.Array]
#: ``action_map(policy_action) -> env_action`` (e.g. ``unit_box_map``); None: the identity
ActionMap = Callable[[Any], Any] | None


def _box_bounds(space: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, (high - low) / 2)`` as float32 of a bounded box; None if any bound is infinite."""
    low = np.asarray(space.low, np.float32)
    high = np.asarray(space.high, np.float32)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return None
    return low, (high - low) / 2


def unit_box_map(space: Any) -> ActionMap:
    """rllab's ``normalize`` action convention (used by Finn et al.'s MAML-RL scripts).

    The policy acts in ``[-1, 1]^A``; the env receives ``low + (clip(a, -1, 1) + 1) / 2 *
    (high - low)``. Returns None when ``space`` already is ``[-1, 1]^A`` (MuJoCo's
    HalfCheetah/Ant, Nav2d) or is unbounded, so those envs see the raw action. Works on
    numpy and JAX arrays.
    """
    bounds = _box_bounds(space)
    if bounds is None:
        return None
    low, half = bounds
    if np.all(low == -1.0) and np.all(half == 1.0):
        return None

    def to_box(a: Any) -> Any:
        return low + (jnp.clip(a, -1.0, 1.0) + 1.0) * half

    return to_box


def tanh_box_map(space: Any) -> ActionMap:
    """A tanh-squashed policy (Haarnoja et al. 2018, SAC, appendix C) on a bounded box.

    The policy's Gaussian sample ``u`` is unbounded; the env receives ``low + (tanh(u) +
    1) / 2 * (high - low)``, so it never clips. Learners keep ``u`` in the trajectories:
    the squashing Jacobian does not depend on the policy parameters, so likelihood ratios
    and score-function gradients of ``u`` equal those of the squashed action, and the KL
    between two squashed Gaussians equals the KL between the Gaussians (an invertible map).
    Unlike clipping, a mean beyond the box does not make every larger sample equally good,
    which otherwise rewards a growing standard deviation at the bounds.
    """
    bounds = _box_bounds(space)
    if bounds is None:
        raise ConfigError(f"tanh squashing needs a bounded action box, got low={space.low} high={space.high}")
    low, half = bounds

    def to_box(u: Any) -> Any:
        return low + (jnp.tanh(u) + 1.0) * half

    return to_box


class Trajectories(NamedTuple):
    """Fixed-length episodes; leading axes ``[E, T]`` (``[N, E, T]`` from ``rollout_tasks``).

    obs:     float32[E, T, *obs_shape]  observation the action was taken in
    actions: float32[E, T, *act_shape]  the action as passed to ``step`` (before clipping)
    rewards: float32[E, T]              reward of the step (0 after the episode ended)
    dones:   bool[E, T]                 the episode ended at this step (terminated or truncated)
    mask:    float32[E, T]              1 for steps taken while the episode was running
    """

    obs: Any
    actions: Any
    rewards: Any
    dones: Any
    mask: Any


def _episode(
    env: Any, policy_apply: PolicyApply, policy_params: Any, params: Any, key: PRNGKey, horizon: int,
    action_map: ActionMap = None,
) -> Trajectories:
    k_reset, k_run = jax.random.split(key)
    obs, state = env.reset(k_reset, params)

    def body(carry, k):
        obs, state, done = carry
        k_pol, k_env = jax.random.split(k)
        action = policy_apply(policy_params, obs, k_pol)
        env_action = action if action_map is None else action_map(action)
        next_obs, state, reward, next_done, _ = env.step(k_env, state, env_action, params)
        out = (obs, jnp.asarray(action, jnp.float32), reward, next_done & ~done, (~done).astype(jnp.float32))
        return (next_obs, state, next_done), out

    carry = (obs, state, jnp.zeros((), bool))
    _, (o, a, r, d, m) = jax.lax.scan(body, carry, jax.random.split(k_run, horizon))
    return Trajectories(o, a, r, d, m)


def rollout(
    env: Any,
    policy_apply: PolicyApply,
    policy_params: Any,
    task_params: Any,
    key: PRNGKey,
    n_episodes: int,
    horizon: int | None = None,
    action_map: ActionMap = None,
) -> Trajectories:
    """``n_episodes`` episodes of ONE task, ``horizon`` (default ``env.max_steps``) steps each.

    Episode ``e`` uses ``split(key, n_episodes)[e]``; resets never change ``task_params``.
    ``action_map``: applied to the policy's action before ``step`` (``unit_box_map``); the
    trajectories record the policy's action.
    """
    horizon = _horizon(env, horizon)
    if not getattr(env, "functional", True):
        batch = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], task_params)
        traj = env.vector_rollout(policy_apply, policy_params, batch, key, n_episodes, horizon=horizon,
                                  action_map=action_map)
        return Trajectories(*(x[0] for x in traj))
    keys = jax.random.split(key, n_episodes)
    return jax.vmap(lambda k: _episode(env, policy_apply, policy_params, task_params, k, horizon, action_map))(keys)


def rollout_tasks(
    env: Any,
    policy_apply: PolicyApply,
    policy_params: Any,
    task_params: Any,
    key: PRNGKey,
    n_episodes: int,
    horizon: int | None = None,
    *,
    per_task_policy: bool = False,
    action_map: ActionMap = None,
) -> Trajectories:
    """``rollout`` over a batch of tasks (leading axis N): arrays ``[N, E, T, ...]``.

    Task ``i`` uses ``split(key, N)[i]``, so row ``i`` equals
    ``rollout(env, ..., task_params[i], split(key, N)[i], n_episodes)``.
    ``policy_params`` is shared, or, with ``per_task_policy=True``, carries a leading task
    axis N (MAML's adapted parameters ``theta'_i``, one per task).
    """
    horizon = _horizon(env, horizon)
    if not getattr(env, "functional", True):
        return env.vector_rollout(
            policy_apply, policy_params, task_params, key, n_episodes, horizon=horizon, per_task_policy=per_task_policy,
            action_map=action_map,
        )
    n = jax.tree_util.tree_leaves(task_params)[0].shape[0]
    keys = jax.random.split(key, n)
    run = lambda pp, p, k: rollout(env, policy_apply, pp, p, k, n_episodes, horizon, action_map)  # noqa: E731
    return jax.vmap(run, in_axes=(0 if per_task_policy else None, 0, 0))(policy_params, task_params, keys)


def make_rollout(
    env: Any,
    policy_apply: PolicyApply,
    n_episodes: int,
    horizon: int | None = None,
    *,
    batched: bool = False,
    per_task_policy: bool = False,
) -> Callable[[Any, Any, PRNGKey], Trajectories]:
    """A jitted ``(policy_params, task_params, key) -> Trajectories`` (``rollout_tasks`` if ``batched``)."""
    fn: Callable[..., Trajectories]
    if batched:
        fn = functools.partial(rollout_tasks, per_task_policy=per_task_policy)
    elif per_task_policy:
        raise ConfigError("make_rollout: per_task_policy=True needs batched=True (a leading task axis)")
    else:
        fn = rollout
    if not getattr(env, "functional", True):
        return lambda pp, tp, k: fn(env, policy_apply, pp, tp, k, n_episodes, horizon)
    return jax.jit(lambda pp, tp, k: fn(env, policy_apply, pp, tp, k, n_episodes, horizon))


def episode_returns(traj: Trajectories) -> jax.Array:
    """Undiscounted return of each episode: ``sum_t rewards * mask`` over the last axis."""
    return (jnp.asarray(traj.rewards) * jnp.asarray(traj.mask)).sum(-1)


def _horizon(env: Any, horizon: int | None) -> int:
    h = int(env.max_steps) if horizon is None else horizon
    if isinstance(h, bool) or not isinstance(h, int) or h <= 0:
        raise ConfigError(f"rollout: horizon must be a positive int, got {horizon!r}")
    return h
