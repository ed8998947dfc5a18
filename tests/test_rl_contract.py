"""The RL side of the MetaEnv contract: registration, light import, rollouts, check_rl_env."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.envs.nav2d import Nav2d
from metabench.rl import RLMetaEnv
from metabench.rollout import Trajectories, episode_returns, make_rollout, rollout, rollout_tasks
from metabench.spec import EnvSpec
from metabench.testing_rl import check_functional, check_task_env, check_tasks

JAX_IDS = ["nav2d-easy", "nav2d-hard", "point-nav"]
MUJOCO_IDS = ["halfcheetah-vel", "halfcheetah-dir", "ant-dir"]


def test_every_rl_id_is_registered_with_40_frozen_tasks() -> None:
    for env_id in JAX_IDS + MUJOCO_IDS:
        spec = metabench.spec(env_id)
        assert spec.id == f"{env_id}-v0" and spec.kind == "rl" and spec.eval_tasks == 40


def test_import_and_jax_envs_do_not_import_mujoco_or_gymnasium() -> None:
    code = (
        "import sys, jax, metabench\n"
        "from metabench.rollout import rollout\n"
        "env = metabench.make('nav2d-hard')\n"
        "t = env.sample_task(jax.random.key(0))\n"
        "rollout(env, lambda p, o, k: jax.numpy.zeros(2), None, t, jax.random.key(1), 1, 3)\n"
        "bad = [m for m in ('mujoco', 'gymnasium', 'metabench.envs.locomotion') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_rollout_shapes_jit_and_determinism() -> None:
    env = metabench.make("nav2d-hard")
    tasks = env.sample_tasks(jax.random.key(0), 4)

    def policy(w, obs, key):  # a Gaussian policy on a linear mean, as a learner would write it
        return jnp.tanh(obs[:2] @ w) + 0.3 * jax.random.normal(key, (2,))

    w = jnp.eye(2)
    run = make_rollout(env, policy, n_episodes=3, horizon=20, batched=True)
    traj = run(w, tasks, jax.random.key(1))
    assert isinstance(traj, Trajectories)
    assert traj.obs.shape == (4, 3, 20, 5) and traj.actions.shape == (4, 3, 20, 2)
    assert traj.rewards.shape == traj.dones.shape == traj.mask.shape == (4, 3, 20)
    assert traj.obs.dtype == jnp.float32 and traj.dones.dtype == jnp.bool_
    again = run(w, tasks, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(traj.actions), np.asarray(again.actions))
    other = run(w, tasks, jax.random.key(2))
    assert not np.array_equal(np.asarray(traj.actions), np.asarray(other.actions))
    # episodes of one task start where the task says (resets never resample it)
    starts = np.asarray(traj.obs[:, :, 0, :])
    assert np.all(starts == starts[:, :1])
    assert episode_returns(traj).shape == (4, 3)
    # per-task (adapted) policy params: task i runs with its own params
    scales = jnp.asarray([0.0, 1.0, 0.0, 1.0])
    per_task = make_rollout(env, lambda s, obs, k: jnp.asarray([0.0, 1.0]) * s - (1 - s), 1, 20, batched=True, per_task_policy=True)
    moved = np.asarray(per_task(scales, tasks, jax.random.key(1)).obs[:, 0, -1, :2] != per_task(scales, tasks, jax.random.key(1)).obs[:, 0, 0, :2])
    assert moved.any(-1).tolist() == [False, True, False, True]


@pytest.mark.slow
def test_rollout_rows_and_gradients() -> None:
    env = metabench.make("nav2d-hard")
    tasks = env.sample_tasks(jax.random.key(0), 4)

    def policy(w, obs, key):
        return jnp.tanh(obs[:2] @ w) + 0.3 * jax.random.normal(key, (2,))

    w = jnp.eye(2)
    traj = make_rollout(env, policy, n_episodes=3, horizon=20, batched=True)(w, tasks, jax.random.key(1))
    # row i of rollout_tasks is rollout on task i with split(key, N)[i]
    single = make_rollout(env, policy, n_episodes=3, horizon=20)
    one = single(w, jax.tree_util.tree_map(lambda x: x[2], tasks), jax.random.split(jax.random.key(1), 4)[2])
    np.testing.assert_allclose(np.asarray(one.rewards), np.asarray(traj.rewards[2]), rtol=1e-6)
    # the learner can differentiate through a rollout-based surrogate (MAML RL inner loop)
    grads = jax.jit(jax.grad(lambda w: episode_returns(rollout_tasks(env, policy, w, tasks, jax.random.key(3), 1, 5)).sum()))(w)
    assert grads.shape == (2, 2) and np.all(np.isfinite(np.asarray(grads)))


def test_rollout_rejects_a_bad_horizon() -> None:
    env = metabench.make("point-nav")
    with pytest.raises(metabench.ConfigError, match="horizon"):
        rollout(env, lambda p, o, k: o, None, env.sample_task(jax.random.key(0)), jax.random.key(0), 1, horizon=0)


@pytest.mark.parametrize("env_id", JAX_IDS)
def test_tasks_and_gymnasium_adapter_conform(env_id) -> None:
    env = metabench.make(env_id)
    check_tasks(env)
    check_task_env(env)


# -- the checker catches defects --------------------------------------------------


class LaxParams(Nav2d):
    """Accepts any task, unknown fields included."""

    def check_params(self, params):
        return params if not isinstance(params, dict) else self.params_type(
            **{k: jnp.asarray(v) for k, v in params.items() if k in self.params_type._fields}
        )


class NoisyStart(Nav2d):
    """Claims a task-fixed start but jitters it with the reset key."""

    def reset(self, key, params):
        jitter = jax.random.uniform(key, (2,), maxval=5.0)
        return super().reset(key, params._replace(start=jnp.clip(params.start + jitter, 0, 255)))


class NotAbsorbing(Nav2d):
    """Keeps paying rewards after the episode ended."""

    def step(self, key, state, action, params):
        obs, new, r, done, info = super().step(key, state, action, params)
        return obs, new, jnp.where(state.done, jnp.float32(-1.0), r), done, info


def _broken(cls: type[RLMetaEnv]) -> RLMetaEnv:
    spec = EnvSpec(id="broken-nav-v0", entry_point=f"{__name__}:{cls.__name__}", kind="rl", eval_tasks=4)
    return cls(spec, difficulty="hard")


def test_checker_catches_an_env_that_accepts_unknown_task_fields() -> None:
    with pytest.raises(AssertionError, match="unknown task field"):
        check_tasks(_broken(LaxParams))


def test_checker_catches_resets_that_move_a_task_fixed_start() -> None:
    with pytest.raises(AssertionError, match="reset keeps the task"):
        check_task_env(_broken(NoisyStart))


@pytest.mark.slow
def test_checker_catches_rewards_after_the_end() -> None:
    with pytest.raises(AssertionError, match="absorbing"):
        check_functional(_broken(NotAbsorbing))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", JAX_IDS)
def test_jax_envs_pass_check_meta_env(env_id) -> None:
    from metabench.testing import check_meta_env

    check_meta_env(metabench.make(env_id))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_mujoco_envs_pass_check_meta_env(env_id) -> None:
    pytest.importorskip("mujoco", reason="MuJoCo is not installed (pip install 'metabench[mujoco]')")
    from metabench.testing import check_meta_env

    env = metabench.make(env_id)
    check_meta_env(env, second_process=False)
    env.close()
