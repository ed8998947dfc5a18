"""Vector envs for ``gymnasium.make_vec("metabench/<id>", num_envs=N)``.

JAX envs (``functional = True``: nav2d, point-nav) get ``JaxVectorEnv``: the ``N`` envs'
states live in one batched pytree and a step is one jitted ``vmap`` of the functional
``step`` (no Python loop over envs). Host-simulated envs (MuJoCo locomotion) get
gymnasium's ``SyncVectorEnv`` over ``FamilyEnv`` (one MuJoCo env per task).

Tasks follow ``FamilyEnv``'s rule per env: a seeded reset (and the first) draws ``N``
tasks from ``split`` (``sample_tasks`` with a key from ``np_random``), an unseeded reset
starts new episodes of the same tasks, a fixed ``task=`` holds for every env. Autoreset
is gymnasium's default ``NEXT_STEP``: the step after an env's episode ended returns its
new episode's first observation with reward 0; it never resamples the task. Keys: env
``i`` has a base key from the reset; episode ``e`` uses ``fold_in(base_i, e)``, its step
``t`` ``fold_in(episode_key, t)`` (as ``JaxTaskEnv``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from metabench.errors import ConfigError
from metabench.gym_env import FamilyEnv, not_rl_message, resolve_task, split_key, task_info
from metabench.rl import RLInputError


def make_vector_env(num_envs: int, env_id: str, task: Any = None, split: str = "train",
                    render_mode: str | None = None, **env_kwargs: Any) -> gym.vector.VectorEnv:
    """The ``vector_entry_point`` of every metabench RL id (module docstring)."""
    import metabench

    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"metabench/{env_id}: num_envs must be a positive int, got {num_envs!r}")
    if render_mode is not None:
        raise ConfigError(f"metabench/{env_id}: render_mode {render_mode!r} is not supported (no rendering)")
    meta_env = metabench.make(env_id, **env_kwargs)
    if meta_env.spec.kind != "rl":
        raise ConfigError(not_rl_message(meta_env.spec.id, meta_env.spec.kind))
    if getattr(meta_env, "functional", False):
        return JaxVectorEnv(meta_env, num_envs, task=task, split=split)
    return gym.vector.SyncVectorEnv(
        [lambda: FamilyEnv(env_id, task=task, split=split, **env_kwargs) for _ in range(num_envs)]
    )


class JaxVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` envs of one JAX ``RLMetaEnv`` stepped by one jitted vmap (module docstring)."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # gymnasium's attribute

    def __init__(self, meta_env: Any, num_envs: int, task: Any = None, split: str = "train"):
        meta_env.check_split(split)
        self.meta_env = meta_env
        self.num_envs = num_envs
        self.split = split
        self.single_observation_space = meta_env.observation_space.to_gymnasium()
        self.single_action_space = meta_env.action_space.to_gymnasium()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        fixed = resolve_task(meta_env, task, split)
        self._fixed = None if fixed is None else jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (num_envs, *x.shape)), fixed)
        self._params: Any = self._fixed
        self._state: Any = None
        self._base: jax.Array | None = None
        self._episode = np.zeros(num_envs, np.int32)
        self._t = np.zeros(num_envs, np.int32)
        self._autoreset = np.zeros(num_envs, bool)
        self._reset_fn = jax.jit(jax.vmap(self._reset_one))
        self._step_fn = jax.jit(jax.vmap(self._step_one))

    # -- one env (vmapped) -----------------------------------------------------------------
    def _reset_one(self, base: jax.Array, episode: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        return self.meta_env.reset(jax.random.fold_in(jax.random.fold_in(base, episode), 0), params)

    def _step_one(self, base: jax.Array, episode: jax.Array, t: jax.Array, state: Any, action: jax.Array,
                  params: Any, autoreset: jax.Array) -> tuple[jax.Array, ...]:
        ep_key = jax.random.fold_in(base, episode)
        obs, new, reward, _, info = self.meta_env.step(jax.random.fold_in(ep_key, t), state, action, params)
        obs0, state0 = self._reset_one(base, episode + 1, params)
        pick = lambda a, b: jnp.where(autoreset, a, b)  # noqa: E731
        state = jax.tree_util.tree_map(pick, state0, new)
        return (pick(obs0, obs), state, pick(0.0, reward).astype(jnp.float32),
                ~autoreset & info["terminated"], ~autoreset & info["truncated"])

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ConfigError(f"{self.meta_env.spec.id}: {len(seed)} seeds for {self.num_envs} envs")
            seed = int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
        super().reset(seed=seed)
        options = dict(options or {})
        task = options.pop("task", None)
        resample = bool(options.pop("resample", False))
        if options:
            raise ConfigError(f"{self.meta_env.spec.id}: unknown reset options {sorted(options)}; known: 'task', 'resample'")
        k_task, k_base = jax.random.split(split_key(int(self.np_random.integers(0, 2**31 - 1)), self.split))
        if task is not None:
            one = resolve_task(self.meta_env, task, self.split)
            self._params = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (self.num_envs, *x.shape)), one)
        elif self._fixed is None and (seed is not None or resample or self._params is None):
            self._params = self.meta_env.sample_tasks(k_task, self.num_envs, self.split)
        self._base = jax.random.split(k_base, self.num_envs)
        self._episode[:] = 0
        self._t[:] = 0
        self._autoreset[:] = False
        obs, self._state = self._reset_fn(self._base, jnp.asarray(self._episode), self._params)
        return np.asarray(obs, dtype=self.single_observation_space.dtype), {"task": task_info(self._params)}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError(f"{self.meta_env.spec.id}: call reset() before step()")
        a = np.asarray(actions, dtype=np.float32)
        want = (self.num_envs, *(self.single_action_space.shape or ()))
        if a.shape != want:
            raise RLInputError(f"{self.meta_env.spec.id}: actions must have shape {want}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise RLInputError(f"{self.meta_env.spec.id}: actions are not finite: {a}")
        self._t += 1
        obs, self._state, reward, term, trunc = self._step_fn(
            self._base, jnp.asarray(self._episode), jnp.asarray(self._t), self._state, jnp.asarray(a),
            self._params, jnp.asarray(self._autoreset))
        obs, reward, term, trunc = (np.asarray(x) for x in jax.device_get((obs, reward, term, trunc)))
        # envs that autoreset in this step start episode + 1 at t = 0
        self._episode += self._autoreset
        self._t[self._autoreset] = 0
        self._autoreset = term | trunc
        return obs.astype(self.single_observation_space.dtype), reward, term, trunc, {}

    def get_task(self) -> Any:
        """The ``num_envs`` current tasks (params with a leading env axis)."""
        return self._params

    def __repr__(self) -> str:
        return f"<JaxVectorEnv metabench/{self.meta_env.spec.id} num_envs={self.num_envs}>"
