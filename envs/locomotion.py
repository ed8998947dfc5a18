"""MuJoCo locomotion task distributions of MAML (Finn et al. 2017, section 5.3).

Needs the ``mujoco`` extra (``pip install 'metabench[mujoco]'``: the ``mujoco`` bindings
and gymnasium's MuJoCo envs). MuJoCo is imported only when one of these envs is built,
never by ``import metabench`` or ``import metabench.envs``.

Description
    gymnasium's v5 models (``HalfCheetah-v5``, ``Ant-v5``, default XML, ``frame_skip = 5``,
    ``dt = 0.05`` s, reset noise 0.1) with a task-conditioned reward. ``v`` is the forward
    velocity ``(x_after - x_before) / dt`` of the root body (``qpos[0]``), as gymnasium v5
    computes it for HalfCheetah (gymnasium's Ant-v5 differentiates the torso's ``xpos``,
    which MuJoCo leaves one substep behind ``qpos``; we use ``qpos`` for both; rllab
    used the torso's centre-of-mass velocity). rllab's ``half_cheetah.xml``, which Finn et al.
    used, has ``timestep`` 0.01 and no ``frame_skip``: one action lasts 0.01 s there and 0.05 s
    here, so a 200-step episode is 2 s there and 10 s here; per-step rewards have the same
    units, but HalfCheetah returns are not directly comparable with the published ones.
    rllab's ``ant.xml`` has ``timestep`` 0.02 with the RK4 integrator and no ``frame_skip``
    (0.02 s per action, 200 steps = 4 s; v5: 0.05 s, Euler), and motors of gear 1 with
    ``ctrlrange`` +-150 where v5 has gear 150 and +-1 (the same torques, and rllab's control
    cost divides the action by that range, so the cost terms agree); ant-dir's reward terms
    match, its episode lengths in simulated time do not.

Spaces
    gymnasium's: HalfCheetah obs float64[17], action Box(-1, 1)^6; Ant obs float64[105]
    (with contact forces), action Box(-1, 1)^8. Actions outside the box are clipped, and
    the control cost is computed on the clipped action.

Rewards (per step; horizon ``max_steps = 200``)
    halfcheetah-vel: ``r = -|v - v*| - 0.05 ||a||^2``; never terminates.
    halfcheetah-dir: ``r = d v - 0.05 ||a||^2``; never terminates.
    ant-dir: ``r = d v - 0.005 ||a||^2 - 0.0005 ||clip(cfrc_ext, -1, 1)||^2 + 0.05 [healthy]``,
    terminated when unhealthy (torso z outside [0.2, 1.0] or a non-finite state) - MAML's
    ``AntEnvRandDirec`` (rllab) terms, so per-step rewards are comparable with the published
    ones (returns: see the time step above).
    Set ``contact_cost_weight=0, healthy_reward=0`` for the bare ``d v - ctrl`` form.

Task distribution and splits
    halfcheetah-vel: ``VelocityParams(velocity: float32[])``, ``v* ~ U[0, 2]``; continuous, so
    splits share the distribution and differ by key. halfcheetah-dir / ant-dir:
    ``DirectionParams(direction: float32[])``, ``d`` = -1 or +1 with probability 1/2. With two
    directions the splits cannot be disjoint: *every split holds both directions*, and
    meta-testing measures adaptation to a direction from the policy's prior, not
    generalisation to a new one. The evaluation set is the frozen ``eval_tasks("test")``
    (40 tasks). Resets redraw only the initial-state noise, never the task.

Functional form
    MuJoCo is not JAX here (``mujoco.mjx`` is not installed in this environment), so these
    envs have ``functional = False``: ``metabench.rollout.rollout``/``rollout_tasks`` call
    ``vector_rollout``, which steps ``tasks x episodes`` task envs in lockstep with one
    batched policy call per step. ``vectorization`` chooses how: ``"loop"`` (the default)
    steps the task envs one after another in this process and skips the ones whose episode
    ended; ``"sync"`` uses gymnasium's ``SyncVectorEnv``, ``"async"`` its ``AsyncVectorEnv``.
    All three give the same trajectories bit for bit on the valid steps (tested), so the
    choice changes speed only. ``benchmarks/bench_rl_envs.py`` measures them against
    single-env stepping: on the idle 2-core CPU (``benchmarks/results/rl_envs.json``, 8 envs)
    the loop measures 0.46x-0.75x of single-env gymnasium stepping with the policy, sync
    0.43x-0.58x, async 0.17x-0.44x (env only: loop 0.74x-0.89x, sync 0.65x-0.84x), i.e. the
    loop is 1.03x-1.30x sync (most where ant-dir episodes end early); under load (load
    average ~10) every gymnasium vector variant measured 0.3x-2x, run to run. MuJoCo steps serially either way: ``SyncVectorEnv`` adds
    its per-env info merging and auto-resets, async pays IPC and has no spare cores here.
    A real speed-up needs ``mujoco.mjx`` on an accelerator or ``mujoco.rollout`` threads
    on a many-core CPU (not done).

Version history
    v0: initial.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import ConfigError
from metabench.rl import BoxSpace, RLInputError, RLMetaEnv
from metabench.rollout import Trajectories
from metabench.spec import EnvSpec
from metabench.tasks import PRNGKey


class VelocityParams(NamedTuple):
    """velocity: float32[] target forward velocity v*."""

    velocity: jax.Array


class DirectionParams(NamedTuple):
    """direction: float32[], -1 (backward) or +1 (forward)."""

    direction: jax.Array


def _require_mujoco(env_id: str) -> None:
    try:
        import gymnasium.envs.mujoco  # noqa: F401
        import mujoco  # noqa: F401
    except ImportError as e:
        raise ModuleNotFoundError(
            f"{env_id} needs MuJoCo and gymnasium's MuJoCo envs: pip install 'metabench[mujoco]' (import failed: {e})"
        ) from e


#: how ``vector_rollout`` steps its envs (module docstring)
VECTORIZATIONS = ("sync", "async", "loop")


class Locomotion(RLMetaEnv):
    """Base of the MuJoCo task distributions (module docstring)."""

    functional: ClassVar[bool] = False
    model: ClassVar[str]  # "half_cheetah" or "ant"
    #: keyword arguments of the gymnasium v5 env (the cost terms of the reward)
    inner_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: EnvSpec, *, max_steps: int = 200, vectorization: str = "loop", **inner_kwargs: Any):
        super().__init__(spec)
        _require_mujoco(spec.id)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
            raise ConfigError(f"{spec.id}: max_steps must be a positive int, got {max_steps!r}")
        if vectorization not in VECTORIZATIONS:
            raise ConfigError(f"{spec.id}: vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}")
        self.max_steps = max_steps
        self.vectorization = vectorization
        self.inner_kwargs = {**self.inner_defaults, **inner_kwargs}
        probe = self.make_inner()  # fails early on a bad keyword; gives the spaces
        self.observation_space = BoxSpace(probe.observation_space.low, probe.observation_space.high, np.float64)
        self.action_space = BoxSpace(probe.action_space.low, probe.action_space.high, np.float32)
        self.dt = float(probe.dt)
        probe.close()
        self._vec: dict[tuple[int, str], Any] = {}
        self.spec = spec.replace(data_hash="synthetic")

    def make_inner(self) -> Any:
        """A fresh gymnasium v5 MuJoCo env (no TimeLimit: this package owns the horizon)."""
        cls: type[Any]
        if self.model == "half_cheetah":
            from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv as cls
        else:
            from gymnasium.envs.mujoco.ant_v5 import AntEnv as cls
        import mujoco

        # gymnasium's half_cheetah.xml uses a compiler attribute MuJoCo 3.x deprecates; it
        # prints that warning on every compile (once per vector-env worker). Silence only
        # that message, only while compiling, and restore the previous handler.
        previous = mujoco.get_mju_user_warning()

        def on_warning(msg: str) -> None:
            if "settotalmass" not in msg:
                warnings.warn(f"MuJoCo: {msg}", RuntimeWarning, stacklevel=2)

        mujoco.set_mju_user_warning(on_warning)
        try:
            return cls(**self.inner_kwargs)
        except TypeError as e:
            raise ConfigError(f"{self.spec.id}: bad MuJoCo env option: {e}") from e
        finally:
            mujoco.set_mju_user_warning(previous)

    # -- reward --------------------------------------------------------------------
    def reward(self, params: Any, x_velocity: float, info: dict[str, Any]) -> float:
        """The task reward from the forward velocity (from ``qpos``) and gymnasium's ``reward_*`` terms."""
        raise NotImplementedError

    # -- adapters ------------------------------------------------------------------
    def task_env(self, params: Any | None = None) -> Any:
        return locomotion_task_env_class()(self, params)

    def _vector_env(self, n: int) -> Any:
        import gymnasium as gym

        key = (n, self.vectorization)
        if key not in self._vec:
            fns = [functools.partial(_task_env_from_spec, self.spec.to_json()) for _ in range(n)]
            if self.vectorization == "async":
                # spawn, not fork: forking a process that runs JAX threads can deadlock
                self._vec[key] = gym.vector.AsyncVectorEnv(fns, context="spawn")
            elif self.vectorization == "loop":
                self._vec[key] = _EnvLoop([self.task_env(None) for _ in range(n)])
            else:
                self._vec[key] = gym.vector.SyncVectorEnv(fns)
        return self._vec[key]

    def close(self) -> None:
        """Close the cached vector envs (worker processes for ``vectorization="async"``)."""
        for vec in self._vec.values():
            vec.close()
        self._vec.clear()

    def vector_rollout(
        self,
        policy_apply: Callable[[Any, jax.Array, PRNGKey], jax.Array],
        policy_params: Any,
        task_params: Any,
        key: PRNGKey,
        n_episodes: int,
        horizon: int | None = None,
        *,
        per_task_policy: bool = False,
        action_map: Callable[[Any], Any] | None = None,
    ) -> Trajectories:
        """``Trajectories`` of numpy arrays ``[N, E, T, ...]`` for N tasks x E episodes.

        One vector env of ``N * E`` task envs (row ``i * E + e``); episode seeds and policy
        keys come from ``key``; the policy is ``jit(vmap(policy_apply))`` over the envs
        (``per_task_policy=True``: ``policy_params`` has a leading task axis N).
        Steps after an episode ended (the vector env auto-resets it) are masked out.
        ``action_map`` (``metabench.rollout.unit_box_map``) is applied before ``step``; the
        trajectories record the policy's actions.
        """
        horizon = self.max_steps if horizon is None else int(horizon)
        leaves = jax.tree_util.tree_leaves(task_params)
        n = int(np.shape(leaves[0])[0])
        b = n * n_episodes
        tasks = [self.check_params(jax.tree_util.tree_map(lambda x: np.asarray(x)[i], task_params)) for i in range(n)]
        vec = self._vector_env(b)
        vec.set_attr("task", [tasks[i // n_episodes] for i in range(b)])
        if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):  # a legacy uint32[2] key
            key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
        k_seed, k_pol = jax.random.split(key)
        seeds = np.asarray(jax.random.randint(k_seed, (b,), 0, 2**31 - 1)).tolist()
        obs, _ = vec.reset(seed=seeds)
        policy = _batched_policy(policy_apply, per_task_policy)
        if per_task_policy:  # one row per env: task i's params for its E episodes
            policy_params = jax.tree_util.tree_map(lambda x: jnp.repeat(jnp.asarray(x), n_episodes, axis=0), policy_params)
        # per-step policy keys as raw key data on the host: one jitted call per step
        step_keys = np.asarray(jax.random.key_data(jax.random.split(k_pol, horizon)))
        shape_a = self.action_space.shape
        o_buf = np.zeros((b, horizon, *self.observation_space.shape), np.float32)
        a_buf = np.zeros((b, horizon, *shape_a), np.float32)
        r_buf = np.zeros((b, horizon), np.float32)
        d_buf = np.zeros((b, horizon), bool)
        m_buf = np.zeros((b, horizon), np.float32)
        alive = np.ones(b, bool)
        for t in range(horizon):
            obs32 = np.asarray(obs, np.float32)
            act = np.asarray(policy(policy_params, obs32, step_keys[t]), np.float32)
            if act.shape != (b, *shape_a) or not np.all(np.isfinite(act)):
                raise RLInputError(f"{self.spec.id}: the policy returned actions of shape {act.shape} or NaN")
            o_buf[:, t], a_buf[:, t], m_buf[:, t] = obs32, act, alive
            obs, rew, term, trunc, _ = vec.step(act if action_map is None else np.asarray(action_map(act), np.float32))
            ended = (np.asarray(term) | np.asarray(trunc)) & alive
            r_buf[:, t] = np.where(alive, rew, 0.0)
            d_buf[:, t] = ended
            alive = alive & ~ended
        shape = (n, n_episodes, horizon)
        return Trajectories(
            obs=o_buf.reshape(*shape, *o_buf.shape[2:]),
            actions=a_buf.reshape(*shape, *shape_a),
            rewards=r_buf.reshape(shape),
            dones=d_buf.reshape(shape),
            mask=m_buf.reshape(shape),
        )


class _EnvLoop:
    """``n`` task envs stepped one after another in this process (``vectorization="loop"``).

    The part of the gymnasium vector env interface that ``vector_rollout`` uses, without
    ``SyncVectorEnv``'s per-env info merging and auto-reset: ``step`` steps only the envs
    still in the episode ``reset`` began (an ended one keeps its last observation and gets
    reward 0 until the next ``reset``; ``vector_rollout`` masks those steps), so an ended
    episode costs nothing.
    """

    def __init__(self, envs: list[Any]):
        self.envs = envs
        self._obs: np.ndarray | None = None
        self._live = np.zeros(len(envs), bool)

    def set_attr(self, name: str, values: list[Any]) -> None:
        for env, value in zip(self.envs, values, strict=True):
            setattr(env, name, value)

    def reset(self, *, seed: list[int]) -> tuple[np.ndarray, dict]:
        self._obs = np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, seed, strict=True)])
        self._live[:] = True
        return self._obs.copy(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        assert self._obs is not None, "reset() first"
        n = len(self.envs)
        rew, term, trunc = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
        for i in np.flatnonzero(self._live):
            self._obs[i], rew[i], term[i], trunc[i], _ = self.envs[i].step(actions[i])
        self._live &= ~(term | trunc)
        return self._obs.copy(), rew, term, trunc, {}

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _task_env_from_spec(spec_json: str) -> Any:
    """Build a task env from a JSON spec (picklable: used by the vector env workers)."""
    return _meta_env_from_spec(spec_json).task_env(None)


@functools.cache
def _meta_env_from_spec(spec_json: str) -> Any:
    """One meta env per spec and process, shared by its task envs (it holds no episode state;
    sharing keeps its jitted task sampler compiled once instead of once per task env)."""
    import metabench
    from metabench.spec import EnvSpec

    return metabench.make(EnvSpec.from_json(spec_json).replace(data_hash=None))


@functools.cache
def _batched_policy(policy_apply: Callable[..., Any], per_env_params: bool = False) -> Callable[..., Any]:
    def run(pp: Any, obs: jax.Array, key_data: jax.Array) -> jax.Array:
        keys = jax.random.split(jax.random.wrap_key_data(key_data), obs.shape[0])
        return jax.vmap(policy_apply, in_axes=(0 if per_env_params else None, 0, 0))(pp, obs, keys)

    return jax.jit(run)


class HalfCheetahVel(Locomotion):
    """``r = -|v - v*| - 0.05 ||a||^2``, ``v* ~ U[0, 2]`` (module docstring)."""

    model: ClassVar[str] = "half_cheetah"
    params_type: ClassVar[type] = VelocityParams
    inner_defaults: ClassVar[dict[str, Any]] = {"ctrl_cost_weight": 0.05}

    def _sample(self, key: PRNGKey, split: str) -> VelocityParams:
        return VelocityParams(velocity=jax.random.uniform(key, (), minval=0.0, maxval=2.0))

    def _check_values(self, params: VelocityParams) -> None:
        v = float(params.velocity)
        if not 0.0 <= v <= 2.0:
            raise ConfigError(f"{self.spec.id}: target velocity {v} lies outside [0, 2]")

    def reward(self, params: VelocityParams, x_velocity: float, info: dict[str, Any]) -> float:
        return -abs(x_velocity - float(params.velocity)) + float(info["reward_ctrl"])


class _Direction(Locomotion):
    params_type: ClassVar[type] = DirectionParams

    def _sample(self, key: PRNGKey, split: str) -> DirectionParams:
        return DirectionParams(direction=jnp.where(jax.random.bernoulli(key), 1.0, -1.0).astype(jnp.float32))

    def _check_values(self, params: DirectionParams) -> None:
        d = float(params.direction)
        if d not in (-1.0, 1.0):
            raise ConfigError(f"{self.spec.id}: direction must be -1.0 or +1.0, got {d}")


class HalfCheetahDir(_Direction):
    """``r = d v - 0.05 ||a||^2``, ``d = +-1`` (module docstring)."""

    model: ClassVar[str] = "half_cheetah"
    inner_defaults: ClassVar[dict[str, Any]] = {"ctrl_cost_weight": 0.05}

    def reward(self, params: DirectionParams, x_velocity: float, info: dict[str, Any]) -> float:
        return float(params.direction) * x_velocity + float(info["reward_ctrl"])


class AntDir(_Direction):
    """``r = d v - 0.005 ||a||^2 - 0.0005 ||clip(cfrc_ext)||^2 + 0.05 [healthy]`` (module docstring)."""

    model: ClassVar[str] = "ant"
    inner_defaults: ClassVar[dict[str, Any]] = {
        "ctrl_cost_weight": 0.005,
        "contact_cost_weight": 5e-4,
        "healthy_reward": 0.05,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (0.2, 1.0),
    }

    def reward(self, params: DirectionParams, x_velocity: float, info: dict[str, Any]) -> float:
        return (
            float(params.direction) * x_velocity
            + float(info["reward_ctrl"])
            + float(info["reward_contact"])
            + float(info["reward_survive"])
        )


@functools.cache
def locomotion_task_env_class() -> type:
    """The gymnasium adapter of one locomotion task (built on first use)."""
    import gymnasium as gym

    class LocomotionTaskEnv(gym.Env):
        """One task of a ``Locomotion`` env; wraps a gymnasium v5 MuJoCo env (see ``metabench.rl``)."""

        metadata: dict[str, Any] = {"render_modes": []}  # gymnasium's attribute (an instance variable there)

        def __init__(self, meta_env: Locomotion, params: Any | None = None):
            self.meta_env = meta_env
            self.inner = meta_env.make_inner()
            self.observation_space = self.inner.observation_space
            self.action_space = self.inner.action_space
            box: Any = self.action_space  # a Box
            self._low, self._high = box.low, box.high
            self._params: Any = None
            self._t = 0
            self._needs_reset = True
            self.set_task(meta_env.default_task() if params is None else params)

        def set_task(self, params: Any) -> None:
            """Validate and install a task; the next ``step`` needs a ``reset``. Idempotent."""
            self._params = self.meta_env.check_params(params)
            self._host_params = jax.device_get(self._params)  # numpy: no device sync per step
            self._needs_reset = True

        def get_task(self) -> Any:
            return self._params

        task = property(get_task, set_task)

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
            super().reset(seed=seed)
            options = dict(options or {})
            if "task" in options:
                self.set_task(options.pop("task"))
            if options:
                raise ConfigError(f"{self.meta_env.spec.id}: unknown reset options {sorted(options)}; known: ['task']")
            obs, info = self.inner.reset(seed=int(self.np_random.integers(0, 2**31 - 1)))
            self._t = 0
            self._needs_reset = False
            return obs, info

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
            if self._needs_reset:
                raise RuntimeError(
                    f"{self.meta_env.spec.id}: call reset() before step() (a new task, or the episode ended)"
                )
            a = np.asarray(action, dtype=np.float32)
            if a.shape != self.action_space.shape:
                raise RLInputError(f"{self.meta_env.spec.id}: action must have shape {self.action_space.shape}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise RLInputError(f"{self.meta_env.spec.id}: action is not finite: {a}")
            a = np.clip(a, self._low, self._high)
            x_before = float(self.inner.data.qpos[0])
            obs, _, terminated, _, info = self.inner.step(a)
            # from qpos (gymnasium's Ant-v5 uses the torso xpos, which lags one substep)
            x_velocity = (float(self.inner.data.qpos[0]) - x_before) / self.inner.dt
            reward = self.meta_env.reward(self._host_params, x_velocity, info)
            self._t += 1
            truncated = self._t >= self.meta_env.max_steps and not terminated
            if terminated or truncated:
                self._needs_reset = True
            return obs, float(reward), bool(terminated), bool(truncated), info

        def close(self) -> None:
            self.inner.close()

        def __repr__(self) -> str:
            return f"<LocomotionTaskEnv {self.meta_env.spec.id}>"

    return LocomotionTaskEnv
