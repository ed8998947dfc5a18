"""2-D point navigation of Finn et al. 2017 (MAML, section 5.3; rllab ``PointEnvRandGoal``).

Description
    A point starts at the origin and moves by its action each step; the goal is not
    observed, so the policy must find it from rewards (the meta-RL setting).

Spaces
    observation float32[2]: the agent position, in the box [-10, 10]^2 it cannot leave
    (``max_steps * max_action`` per axis).
    action float32[2] in Box(-0.1, 0.1)^2: the displacement; clipped to the box, as in
    MAML's point env.

Reward and termination
    ``r = -||pos' - goal||_2`` after the move. Terminated when ``|dx| < 0.01`` and
    ``|dy| < 0.01`` (MAML's point env); truncated after ``max_steps = 100``.

Task distribution and splits
    ``PointNavParams(goal: float32[2])`` with ``goal ~ U[-0.5, 0.5]^2``; continuous, so the
    splits share it and differ by key; evaluation set = frozen ``eval_tasks("test")``
    (40 tasks). Resets never change the goal; the start is always the origin.

Version history
    v0: initial.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import ConfigError
from metabench.rl import BoxSpace, RLMetaEnv
from metabench.spec import EnvSpec
from metabench.tasks import PRNGKey


class PointNavParams(NamedTuple):
    """goal: float32[2]."""

    goal: jax.Array


class PointNavState(NamedTuple):
    """pos: float32[2]; t: int32[] steps taken; done: bool[] episode over."""

    pos: jax.Array
    t: jax.Array
    done: jax.Array


class PointNav(RLMetaEnv):
    """Finn et al. 2017 2-D navigation (module docstring)."""

    deterministic_reset: ClassVar[bool] = True
    params_type: ClassVar[type] = PointNavParams

    def __init__(
        self,
        spec: EnvSpec,
        *,
        goal_range: float = 0.5,
        max_action: float = 0.1,
        success_radius: float = 0.01,
        max_steps: int = 100,
    ):
        super().__init__(spec)
        for name, v in (("goal_range", goal_range), ("max_action", max_action), ("success_radius", success_radius)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{spec.id}: {name} must be a positive number, got {v!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
            raise ConfigError(f"{spec.id}: max_steps must be a positive int, got {max_steps!r}")
        self.goal_range = float(goal_range)
        self.success_radius = float(success_radius)
        self.max_steps = max_steps
        # the agent moves at most max_action per axis and step: the box is exact.
        bound = float(max_action) * max_steps
        self.observation_space = BoxSpace.uniform(-bound, bound, (2,))
        self.action_space = BoxSpace.uniform(-float(max_action), float(max_action), (2,))
        self.spec = spec.replace(data_hash="synthetic")

    def _sample(self, key: PRNGKey, split: str) -> PointNavParams:
        return PointNavParams(goal=jax.random.uniform(key, (2,), minval=-self.goal_range, maxval=self.goal_range))

    def _check_values(self, params: PointNavParams) -> None:
        g = np.asarray(params.goal)
        if np.any(np.abs(g) > self.goal_range):
            raise ConfigError(f"{self.spec.id}: goal {g.tolist()} lies outside [-{self.goal_range}, {self.goal_range}]^2")

    def reset(self, key: PRNGKey, params: PointNavParams) -> tuple[jax.Array, PointNavState]:
        """Always the origin: ``key`` is unused (kept for the common signature)."""
        pos = jnp.zeros((2,), jnp.float32)
        return pos, PointNavState(pos=pos, t=jnp.zeros((), jnp.int32), done=jnp.zeros((), bool))

    def step(self, key: PRNGKey, state: PointNavState, action: jax.Array, params: PointNavParams):
        action = self.check_action(action)
        live = ~state.done
        moved = state.pos + action
        delta = moved - params.goal
        reward = -jnp.linalg.norm(delta)
        reached = jnp.all(jnp.abs(delta) < self.success_radius)
        t = state.t + 1
        truncated = (t >= self.max_steps) & ~reached
        pos = jnp.where(live, moved, state.pos)
        new = PointNavState(pos=pos, t=jnp.where(live, t, state.t), done=state.done | reached | truncated)
        info = {"terminated": live & reached, "truncated": live & truncated}
        return pos, new, jnp.where(live, reward, 0.0).astype(jnp.float32), new.done, info
