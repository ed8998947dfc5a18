"""Nav2d: point navigation on a 255 x 255 court (seed 002, DMAML thesis, section 3.6.3.2).

Description
    A point agent walks towards a point goal on a court of 255 x 255 units with float
    coordinates. Each step it picks a heading and a step length; positions are clipped
    to the court. The reference implementation is gym-nav2d (the thesis' footnote 3).

Spaces
    observation float32[5] = (agent x, agent y, goal x, goal y) mapped from [0, 255] to
    [-1, 1] (``(p - 127.5) / 127.5``) and the distance divided by the diagonal ``255 sqrt 2``
    ([0, 1]); the box is exactly Table 3.2 of the thesis.
    action float32[2] in Box(-1, 1)^2 (Table 3.3): heading ``theta = (a0 + 1) pi``
    (0-360 degrees, counter-clockwise from +x) and step length ``(a1 + 1) / 2 * 10``
    (0-10 units). Actions outside the box are clipped.

Reward and termination (gym-nav2d's reward, which the thesis' thresholds assume)
    After each step, with ``d`` the new distance to the goal::

        r = -d / 10 - 1            + 1000 if d <= goal_radius (goal reached: terminated)

    Truncated after ``max_steps = 100`` steps (gym-nav2d's limit). ``goal_radius = 0.1``
    (gym-nav2d's ``eps``; any radius below 0.62 keeps the 37-step worst case below).
    Steps after the end are absorbing (reward 0), see ``metabench.rl``.

    Derivation of the "solved" thresholds (return > 330 or fewer than 38 steps): the
    worst start is a corner with the goal in the opposite corner, ``d0 = 255 sqrt 2 =
    360.62``. A perfect policy walks 10 units per step, so after step ``t < 37`` the
    distance is ``d0 - 10 t`` and it needs ``ceil(d0 / 10) = 37`` steps (``d_36 = 0.62 >
    goal_radius``). Its return is ``1000 - 37 - sum_{t=1..36} (d0 - 10 t) / 10 = 1000 - 37
    - 632.25 = 330.75 > 330``. Any policy that needs 38 or more steps from that start pays
    at least one more ``-1`` (and a positive distance term), so its return is at most
    ``329.74 < 330``: there, "return > 330" and "fewer than 38 steps" coincide. From any
    easier start the optimal return is higher (every term shrinks with ``d0``), so a
    policy that walks straight to the goal always clears 330. With ``goal_radius >=
    0.62`` the worst case needs 36 steps and the thresholds lose this meaning.

Task distribution and splits
    A task is ``Nav2dParams(start: float32[2], goal: float32[2])`` in court units; it
    fixes both, so every episode of a task starts at the same point (the thesis fixes
    the env seed per task for exactly this reason) and resets never resample it.
    ``nav2d-easy``: start ~ U[0, 255]^2, goal fixed at the court centre (127.5, 127.5).
    ``nav2d-hard``: start and goal ~ U[0, 255]^2, independent. Both distributions are
    continuous: the splits share them and differ by key; the evaluation set is the
    frozen ``eval_tasks("test")`` (40 tasks).

Version history
    v0: initial.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import ConfigError
from metabench.rl import BoxSpace, RLMetaEnv
from metabench.spec import EnvSpec
from metabench.tasks import PRNGKey


class Nav2dParams(NamedTuple):
    """start: float32[2], goal: float32[2] (court units, in [0, court]^2)."""

    start: jax.Array
    goal: jax.Array


class Nav2dState(NamedTuple):
    """pos: float32[2] agent position; t: int32[] steps taken; done: bool[] episode over."""

    pos: jax.Array
    t: jax.Array
    done: jax.Array


class Nav2d(RLMetaEnv):
    """Nav2d of seed 002 (module docstring). ``difficulty`` is ``"easy"`` or ``"hard"``."""

    deterministic_reset: ClassVar[bool] = True
    params_type: ClassVar[type] = Nav2dParams

    def __init__(
        self,
        spec: EnvSpec,
        *,
        difficulty: str = "hard",
        court: float = 255.0,
        max_step_size: float = 10.0,
        goal_radius: float = 0.1,
        goal_bonus: float = 1000.0,
        max_steps: int = 100,
    ):
        super().__init__(spec)
        if difficulty not in ("easy", "hard"):
            raise ConfigError(f"{spec.id}: difficulty must be 'easy' or 'hard', got {difficulty!r}")
        for name, v in (("court", court), ("max_step_size", max_step_size), ("goal_radius", goal_radius)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{spec.id}: {name} must be a positive number, got {v!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
            raise ConfigError(f"{spec.id}: max_steps must be a positive int, got {max_steps!r}")
        self.difficulty = difficulty
        self.court = float(court)
        self.max_step_size = float(max_step_size)
        self.goal_radius = float(goal_radius)
        self.goal_bonus = float(goal_bonus)
        self.max_steps = max_steps
        self.diagonal = self.court * math.sqrt(2.0)
        self.observation_space = BoxSpace(np.array([-1, -1, -1, -1, 0], np.float32), np.ones(5, np.float32))
        self.action_space = BoxSpace.uniform(-1.0, 1.0, (2,))
        self.spec = spec.replace(data_hash="synthetic")

    # -- tasks ---------------------------------------------------------------------
    def _sample(self, key: PRNGKey, split: str) -> Nav2dParams:
        k_start, k_goal = jax.random.split(key)
        start = jax.random.uniform(k_start, (2,), minval=0.0, maxval=self.court)
        if self.difficulty == "hard":
            goal = jax.random.uniform(k_goal, (2,), minval=0.0, maxval=self.court)
        else:
            goal = jnp.full((2,), self.court / 2, jnp.float32)
        return Nav2dParams(start=start, goal=goal)

    def _check_values(self, params: Nav2dParams) -> None:
        for name in ("start", "goal"):
            v = np.asarray(getattr(params, name))
            if np.any(v < 0) or np.any(v > self.court):
                raise ConfigError(f"{self.spec.id}: task {name} {v.tolist()} lies outside the court [0, {self.court}]^2")
        if self.difficulty == "easy" and not np.allclose(np.asarray(params.goal), self.court / 2):
            raise ConfigError(f"{self.spec.id}: easy tasks have the goal at the centre {self.court / 2}; use nav2d-hard")

    # -- functional env ------------------------------------------------------------
    def _obs(self, pos: jax.Array, goal: jax.Array) -> jax.Array:
        d = jnp.linalg.norm(goal - pos)
        half = self.court / 2
        obs = jnp.concatenate([(pos - half) / half, (goal - half) / half, (d / self.diagonal)[None]])
        return self.observation_space.clip(obs.astype(jnp.float32))

    def reset(self, key: PRNGKey, params: Nav2dParams) -> tuple[jax.Array, Nav2dState]:
        """The task fixes the start: ``key`` is unused (kept for the common signature)."""
        pos = jnp.asarray(params.start, jnp.float32)
        state = Nav2dState(pos=pos, t=jnp.zeros((), jnp.int32), done=jnp.zeros((), bool))
        return self._obs(pos, params.goal), state

    def step(self, key: PRNGKey, state: Nav2dState, action: jax.Array, params: Nav2dParams):
        action = self.check_action(action)
        theta = (action[0] + 1.0) * jnp.pi
        length = (action[1] + 1.0) / 2.0 * self.max_step_size
        moved = jnp.clip(state.pos + length * jnp.stack([jnp.cos(theta), jnp.sin(theta)]), 0.0, self.court)
        d = jnp.linalg.norm(params.goal - moved)
        reached = d <= self.goal_radius
        reward = -d / 10.0 - 1.0 + jnp.where(reached, self.goal_bonus, 0.0)
        t = state.t + 1
        truncated = (t >= self.max_steps) & ~reached
        live = ~state.done
        pos = jnp.where(live, moved, state.pos)
        new = Nav2dState(pos=pos, t=jnp.where(live, t, state.t), done=state.done | reached | truncated)
        info = {"terminated": live & reached, "truncated": live & truncated}
        return self._obs(pos, params.goal), new, jnp.where(live, reward, 0.0).astype(jnp.float32), new.done, info

    # -- action parameterisations ---------------------------------------------------
    def displacement_to_action(self, u: jax.Array) -> jax.Array:
        """The action ``float32[..., 2]`` that moves the agent by ``u * max_step_size`` units.

        ``u: float[..., 2]`` is a planar displacement in units of the largest step; its
        heading becomes ``a0`` and its length, capped at one step, ``a1``. For policies that
        act in Cartesian displacements (``maml-rl --set squash=displacement``): walking
        towards the goal is then ``u = (goal - agent) / max_step_size``, a linear function of
        the observation, where the heading ``atan2`` of the native action is discontinuous
        and has no linear approximation near the goal. The map is continuous in ``u`` except
        at ``u = 0`` (a zero step, whatever the heading).
        """
        u = jnp.asarray(u, jnp.float32)
        heading = jnp.mod(jnp.arctan2(u[..., 1], u[..., 0]), 2.0 * jnp.pi)
        length = jnp.minimum(jnp.linalg.norm(u, axis=-1), 1.0)
        return jnp.stack([jnp.minimum(heading / jnp.pi - 1.0, 1.0), 2.0 * length - 1.0], axis=-1)

    # -- evaluation ----------------------------------------------------------------
    #: the thesis' criterion (module docstring): return above this, or fewer steps than below
    solved_return: ClassVar[float] = 330.0
    solved_steps: ClassVar[int] = 38

    def solved(self, traj: Any) -> jax.Array:
        """bool[...] per episode of ``Trajectories`` ``[..., T]``: return > 330 or goal reached in < 38 steps.

        An episode that ends before ``max_steps`` ended at the goal (truncation only
        happens at ``max_steps``), so "reached in < 38 steps" is ``done`` within 37 steps.
        """
        mask, rewards = jnp.asarray(traj.mask), jnp.asarray(traj.rewards)
        steps = mask.sum(-1)
        ended = jnp.asarray(traj.dones).any(-1)
        quick = ended & (steps < self.solved_steps) & (steps < self.max_steps)
        return ((rewards * mask).sum(-1) > self.solved_return) | quick

