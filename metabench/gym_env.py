"""``FamilyEnv``: a metabench RL task distribution as one ``gymnasium.Env``.

Built by ``gymnasium.make("metabench/<id>")`` (ids registered by ``metabench.gym_ids``)::

    env = gymnasium.make("metabench/point-nav-v0")              # a task drawn on reset(seed=)
    env = gymnasium.make("metabench/point-nav-v0", split="test")  # drawn from the test split
    env = gymnasium.make("metabench/point-nav-v0", task=3)        # frozen test task 3, always
    env = gymnasium.make("metabench/point-nav-v0", task={"goal": [0.1, -0.2]})

Task rule: a *seeded* reset (``reset(seed=s)``), the first reset, and a reset with
``options={"resample": True}`` draw a new task from ``split`` with a JAX key taken from
``np_random``; an unseeded reset starts a new episode of the *same* task (so gymnasium's
autoreset never resamples it, as metabench's RL contract requires). A fixed ``task=``
never changes; ``options={"task": params}`` installs one explicitly. ``info["task"]`` on
reset holds the current task as numpy arrays.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax
import numpy as np

from metabench.env import split_salt
from metabench.errors import ConfigError


def resolve_task(meta_env: Any, task: Any, split: str) -> Any:
    """``task`` as validated params: an int picks frozen eval task ``task`` of ``split``."""
    if task is None:
        return None
    if isinstance(task, (int, np.integer)) and not isinstance(task, bool):
        n = meta_env.num_eval_tasks
        if not 0 <= int(task) < n:
            raise ConfigError(f"{meta_env.spec.id}: task index {task} out of range: split {split!r} has {n} frozen tasks")
        batch = meta_env.eval_tasks(split, int(task), int(task) + 1)
        return meta_env.check_params(jax.tree_util.tree_map(lambda x: x[0], batch))
    return meta_env.check_params(task)


def split_key(seed: int, split: str) -> jax.Array:
    """The task key of a draw: the split is folded in, so splits whose distribution is the same
    (continuous ones, differing only by key) still give different tasks for one seed."""
    return jax.random.fold_in(jax.random.key(seed), split_salt(split))


def task_info(params: Any) -> dict[str, np.ndarray]:
    """A task as ``{field: numpy array}`` (for ``info``)."""
    return {k: np.asarray(v) for k, v in params._asdict().items()}


class FamilyEnv(gym.Env):
    """One metabench RL id as a gymnasium env (module docstring: the task rule).

    Args:
        env_id: metabench id (``"point-nav-v0"``); must be of kind ``"rl"``.
        task: a fixed task (params, a dict of fields, or an index into the frozen tasks
            of ``split``); ``None`` draws tasks from ``split``.
        split: ``"train"`` (default), ``"val"`` or ``"test"``.
        render_mode: only ``None`` (metabench envs do not render).
        **env_kwargs: options of ``metabench.make(env_id, ...)``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # gymnasium's attribute (an instance variable there)

    def __init__(self, env_id: str, task: Any = None, split: str = "train", render_mode: str | None = None,
                 **env_kwargs: Any):
        import metabench

        if render_mode is not None:
            raise ConfigError(f"metabench/{env_id}: render_mode {render_mode!r} is not supported (no rendering)")
        meta_env = metabench.make(env_id, **env_kwargs)
        if meta_env.spec.kind != "rl":
            raise ConfigError(not_rl_message(meta_env.spec.id, meta_env.spec.kind))
        meta_env.check_split(split)
        self.meta_env = meta_env
        self.split = split
        self._fixed = resolve_task(meta_env, task, split)
        self.inner = meta_env.task_env(self._fixed)  # the first frozen test task until the first reset
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space
        self._has_task = self._fixed is not None

    # -- task ------------------------------------------------------------------------------
    def get_task(self) -> Any:
        """The current task (params)."""
        return self.inner.get_task()

    def _draw_task(self) -> None:
        key = split_key(int(self.np_random.integers(0, 2**31 - 1)), self.split)
        self.inner.set_task(self.meta_env.sample_task(key, self.split))
        self._has_task = True

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        task = options.pop("task", None)
        resample = bool(options.pop("resample", False))
        if options:
            raise ConfigError(
                f"metabench/{self.meta_env.spec.id}: unknown reset options {sorted(options)}; known: 'task', 'resample'"
            )
        if task is not None:
            self.inner.set_task(resolve_task(self.meta_env, task, self.split))
            self._has_task = True
        elif self._fixed is None and (seed is not None or resample or not self._has_task):
            self._draw_task()
        obs, info = self.inner.reset(seed=int(self.np_random.integers(0, 2**31 - 1)))
        return obs, {**info, "task": task_info(self.get_task())}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return self.inner.step(action)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"<FamilyEnv metabench/{self.meta_env.spec.id} split={self.split}>"


def not_rl_message(env_id: str, kind: str) -> str:
    """The error of a gymnasium id of a supervised env."""
    import metabench

    rl = sorted(k for k, s in metabench.registry.items() if s.kind == "rl")
    return (
        f"metabench/{env_id} is a {kind} task distribution (supervised), not an RL env: gymnasium ids work "
        f"for the RL ids only ({', '.join('metabench/' + k for k in rl)}). "
        f"Use metabench.make({env_id!r}) for supervised tasks."
    )


def not_rl(env_id: str, kind: str, **_: Any) -> Any:
    """Entry point of the gymnasium ids of supervised envs: raises ``ConfigError``."""
    raise ConfigError(not_rl_message(env_id, kind))
