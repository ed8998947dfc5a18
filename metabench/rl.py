"""The RL side of the MetaEnv contract: ``RLMetaEnv`` (``kind = "rl"``).

Contract (merged into ``docs/contract.md``)
-------------------------------------------
**Tasks.** A task is a *parameter pytree* (a ``NamedTuple`` of arrays: a goal, a target
velocity, a direction) drawn by ``sample_task(key, split)``, pure in ``key``. Where the
distribution is continuous (Nav2d starts/goals, point-nav goals, target velocities) the
splits share it and differ only in their keys; the evaluation set is the frozen
``eval_tasks("test")`` (``spec.eval_tasks`` = 40 tasks for kind "rl", from
``spec.eval_seed``). Where it is finite and too small to split (the two directions
{-1, +1} of ``halfcheetah-dir``/``ant-dir``) *every split contains both directions*:
meta-test tasks are not new directions, they are new draws; each env documents this.
``check_params(params)`` validates a task on the host (shape, dtype, range, known
fields) and raises ``ConfigError`` naming the bad field.

**Functional env (JAX envs, ``functional = True``)**, gymnax style, pure and jittable,
vmappable over tasks and over episodes::

    obs, state = env.reset(key, params)
    obs, state, reward, done, info = env.step(key, state, action, params)

``info = {"terminated": bool[], "truncated": bool[]}``, ``done = terminated | truncated``.
Truncation happens at ``env.max_steps``. After ``done`` the state is *absorbing*: further
steps return the same observation, reward 0 and ``done = True`` (so fixed-length
``lax.scan`` rollouts need no auto-reset); **nothing ever resamples the task**: the
task is an argument, and an episode reset only redraws what the task does not fix.
Actions are cast to float32 and clipped to ``action_space`` (documented, like
gymnasium's ``ClipAction``); a wrong action shape raises ``ConfigError`` at trace time;
a NaN action is *not* masked in the functional form - it propagates to the observation
and the reward (``jnp.clip`` keeps NaN), so a corrupted rollout shows up as a NaN
return rather than silently (the gymnasium adapter raises instead).
``env.observation_space`` / ``env.action_space`` are ``BoxSpace`` descriptions
(``low``, ``high``, ``shape``, ``dtype``; ``.to_gymnasium()``).

**Rollouts.** ``metabench.rollout.rollout(env, policy_apply, policy_params,
task_params, key, n_episodes)`` returns ``Trajectories`` with ``[E, T, ...]`` arrays
(jittable; ``rollout_tasks`` adds a leading task axis). Host-side envs (MuJoCo,
``functional = False``) return the same ``Trajectories`` as numpy arrays, stepped with
gymnasium vector envs.

**Gymnasium adapter.** ``env.task_env(params) -> gymnasium.Env`` (needs the ``rl``
extra): ``reset(seed=, options=)``, ``step``, spaces; passes
``gymnasium.utils.env_checker.check_env``. ``set_task(params)`` validates and installs a
task (idempotent: calling it twice is calling it once) and requires a ``reset`` before
the next ``step``; ``get_task()`` returns it; resets never change it. Bad input raises:
a wrong action shape or a NaN action ``ValueError``; ``step`` before ``reset`` or after
termination/truncation ``RuntimeError``; an invalid task ``ConfigError``. Actions outside
the box are clipped (documented gymnasium ``ClipAction`` behaviour).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metabench.env import MetaEnv
from metabench.errors import ConfigError, MetabenchError
from metabench.tasks import PRNGKey

Params = Any  # an RL task: a NamedTuple of arrays
State = Any


@dataclasses.dataclass(frozen=True, eq=False)
class BoxSpace:
    """A box ``[low, high]`` of ``shape`` and ``dtype`` (bounds may be +-inf)."""

    low: np.ndarray
    high: np.ndarray
    dtype: Any = np.float32

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=self.dtype)
        high = np.broadcast_to(np.asarray(self.high, dtype=self.dtype), low.shape).copy()
        if low.shape != high.shape or np.any(low > high):
            raise ConfigError(f"BoxSpace: need low <= high of one shape, got {low} and {high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def uniform(cls, low: float, high: float, shape: tuple[int, ...], dtype: Any = np.float32) -> BoxSpace:
        return cls(np.full(shape, low, dtype), np.full(shape, high, dtype), dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.low.shape)

    def clip(self, x: jax.Array) -> jax.Array:
        return jnp.clip(x, jnp.asarray(self.low), jnp.asarray(self.high))

    def contains(self, x: Any) -> bool:
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

    def to_gymnasium(self) -> Any:
        from gymnasium import spaces

        return spaces.Box(low=self.low, high=self.high, shape=self.shape, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"BoxSpace(shape={self.shape}, low={self.low.tolist()}, high={self.high.tolist()}, dtype={np.dtype(self.dtype).name})"


class RLMetaEnv(MetaEnv):
    """Base class of task-conditioned RL envs (module docstring: the contract).

    Subclasses set ``params_type`` (the task NamedTuple), ``observation_space``,
    ``action_space`` and ``max_steps``, and implement ``_sample`` and, for JAX envs,
    ``reset``/``step``; host-side envs set ``functional = False`` and implement
    ``task_env`` and ``vector_rollout``.
    """

    kind: ClassVar[str] = "rl"
    functional: ClassVar[bool] = True
    #: True when ``reset`` ignores its key (the task fixes the initial state).
    deterministic_reset: ClassVar[bool] = False
    params_type: ClassVar[type]
    observation_space: BoxSpace
    action_space: BoxSpace
    max_steps: int

    # -- functional env ------------------------------------------------------------
    def reset(self, key: PRNGKey, params: Params) -> tuple[jax.Array, State]:
        """``(obs, state)`` of a new episode of task ``params``; never changes the task."""
        raise NotImplementedError(
            f"{self.spec.id} is simulated on the host, not in JAX: use env.task_env(params) or "
            "metabench.rollout.rollout(env, ...) (vectorised gymnasium envs)"
        )

    def step(
        self, key: PRNGKey, state: State, action: jax.Array, params: Params
    ) -> tuple[jax.Array, State, jax.Array, jax.Array, dict[str, jax.Array]]:
        """``(obs, state, reward, done, info)``; absorbing after ``done``."""
        raise NotImplementedError(
            f"{self.spec.id} is simulated on the host, not in JAX: use env.task_env(params) or "
            "metabench.rollout.rollout(env, ...) (vectorised gymnasium envs)"
        )

    def check_action(self, action: Any) -> jax.Array:
        """Cast to float32 and clip to the box; a wrong shape raises at trace time."""
        action = jnp.asarray(action, dtype=jnp.float32)
        if tuple(action.shape) != self.action_space.shape:
            raise ConfigError(
                f"{self.spec.id}: action must have shape {self.action_space.shape}, got {tuple(action.shape)} "
                "(vmap the step function for batches)"
            )
        return self.action_space.clip(action)

    # -- tasks ---------------------------------------------------------------------
    def check_params(self, params: Any) -> Params:
        """Validate one task on the host and return it as ``params_type`` of jnp arrays.

        Accepts a ``params_type`` or a mapping with exactly its fields. Raises
        ``ConfigError`` on unknown or missing fields, wrong shapes/dtypes, non-finite values
        or values outside the task distribution's support (``_check_values``).
        """
        cls: Any = self.params_type
        fields = cls._fields
        if isinstance(params, dict):
            unknown = sorted(set(params) - set(fields))
            missing = sorted(set(fields) - set(params))
            if unknown or missing:
                raise ConfigError(
                    f"{self.spec.id}: a task has the fields {list(fields)}; "
                    f"unknown: {unknown}, missing: {missing}"
                )
            params = cls(**params)
        if not isinstance(params, cls):
            raise ConfigError(
                f"{self.spec.id}: a task must be a {cls.__name__}{tuple(fields)} (or a dict of those fields), "
                f"got {type(params).__name__}"
            )
        if ("rl", "task_shapes") not in self._jitted:
            self._jitted[("rl", "task_shapes")] = self.task_shapes()
        shapes = self._jitted[("rl", "task_shapes")]
        out = {}
        for name in fields:
            want = getattr(shapes, name)
            value = np.asarray(getattr(params, name))
            if value.shape != tuple(want.shape):
                raise ConfigError(
                    f"{self.spec.id}: task field {name!r} must have shape {tuple(want.shape)}, got {value.shape} "
                    "(one task, not a batch)"
                )
            if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
                raise ConfigError(f"{self.spec.id}: task field {name!r} must be numeric, got {value.dtype}")
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                raise ConfigError(f"{self.spec.id}: task field {name!r} is not finite: {value}")
            out[name] = jnp.asarray(value, dtype=want.dtype)
        params = cls(**out)
        self._check_values(params)
        return params

    def _check_values(self, params: Params) -> None:
        """Raise ``ConfigError`` when a task lies outside the distribution's support."""

    # -- adapters ------------------------------------------------------------------
    def task_env(self, params: Any | None = None) -> Any:
        """A ``gymnasium.Env`` for one task (the first frozen test task when ``None``)."""
        return jax_task_env_class()(self, params)

    def jitted(self, name: str) -> Callable[..., Any]:
        """Cached ``jax.jit`` of ``reset``/``step`` (shared by every adapter of this env)."""
        key = ("rl", name)
        if key not in self._jitted:
            self._jitted[key] = jax.jit(getattr(self, name))
        return self._jitted[key]

    def default_task(self) -> Params:
        """The first frozen test task (used when an adapter is built without a task)."""
        return jax.tree_util.tree_map(lambda x: x[0], self.eval_tasks("test", 0, 1))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            observation_space=repr(self.observation_space),
            action_space=repr(self.action_space),
            max_steps=int(self.max_steps),
            functional=self.functional,
        )
        return out


class RLInputError(MetabenchError, ValueError):
    """An action the gymnasium adapter refuses (wrong shape, NaN)."""


@functools.cache
def jax_task_env_class() -> type:
    """The gymnasium adapter class of JAX envs (built on first use: gymnasium is optional)."""
    try:
        import gymnasium as gym
    except ModuleNotFoundError as e:  # pragma: no cover - exercised only without the extra
        raise ModuleNotFoundError(
            "task_env needs gymnasium: pip install 'metabench[rl]'"
        ) from e

    class JaxTaskEnv(gym.Env):
        """One task of a JAX ``RLMetaEnv`` as a ``gymnasium.Env`` (see ``metabench.rl``).

        ``reset(seed=)`` seeds ``self.np_random`` as gymnasium does; the episode's JAX key
        is drawn from it, step ``t`` uses ``fold_in(episode_key, t)``. ``options`` may carry
        ``{"task": params}``, the same as ``set_task(params)`` before the reset.
        """

        metadata: dict[str, Any] = {"render_modes": []}  # gymnasium's attribute (an instance variable there)

        def __init__(self, meta_env: RLMetaEnv, params: Any | None = None):
            self.meta_env = meta_env
            self.observation_space = meta_env.observation_space.to_gymnasium()
            self.action_space = meta_env.action_space.to_gymnasium()
            self._reset_fn = meta_env.jitted("reset")
            if ("rl", "step_at") not in meta_env._jitted:
                meta_env._jitted[("rl", "step_at")] = jax.jit(
                    lambda k, t, s, a, p: meta_env.step(jax.random.fold_in(k, t), s, a, p)
                )
            self._step_fn = meta_env._jitted[("rl", "step_at")]
            self._params: Params = None
            self._state: State = None
            self._key: PRNGKey | None = None
            self._t = 0
            self._needs_reset = True
            self.set_task(meta_env.default_task() if params is None else params)

        # -- task --------------------------------------------------------------
        def set_task(self, params: Any) -> None:
            """Validate and install a task; the next ``step`` needs a ``reset``. Idempotent."""
            self._params = self.meta_env.check_params(params)
            self._state = None
            self._needs_reset = True

        def get_task(self) -> Params:
            return self._params

        task = property(get_task, set_task)

        # -- gymnasium API -----------------------------------------------------
        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
            super().reset(seed=seed)
            options = dict(options or {})
            if "task" in options:
                self.set_task(options.pop("task"))
            if options:
                raise ConfigError(f"{self.meta_env.spec.id}: unknown reset options {sorted(options)}; known: ['task']")
            self._key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
            obs, self._state = self._reset_fn(jax.random.fold_in(self._key, 0), self._params)
            self._t = 0
            self._needs_reset = False
            return np.asarray(obs, dtype=self.observation_space.dtype), {}

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
            if self._needs_reset:
                raise RuntimeError(
                    f"{self.meta_env.spec.id}: call reset() before step() (a new task, or the episode ended)"
                )
            a = np.asarray(action, dtype=np.float32)
            if a.shape != self.meta_env.action_space.shape:
                raise RLInputError(
                    f"{self.meta_env.spec.id}: action must have shape {self.meta_env.action_space.shape}, got {a.shape}"
                )
            if not np.all(np.isfinite(a)):
                raise RLInputError(f"{self.meta_env.spec.id}: action is not finite: {a}")
            self._t += 1
            obs, self._state, reward, _, info = self._step_fn(self._key, self._t, self._state, a, self._params)
            obs, reward, term, trunc = jax.device_get((obs, reward, info["terminated"], info["truncated"]))
            terminated, truncated = bool(term), bool(trunc)
            if terminated or truncated:
                self._needs_reset = True
            return np.asarray(obs, dtype=self.observation_space.dtype), float(reward), terminated, truncated, {}

        def __repr__(self) -> str:
            return f"<JaxTaskEnv {self.meta_env.spec.id}>"

    return JaxTaskEnv
