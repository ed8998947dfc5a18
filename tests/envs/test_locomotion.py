"""MuJoCo locomotion tasks: rewards recomputed from qpos/qvel, task validation, vector rollouts.

Skipped cleanly when MuJoCo (the ``metabench[mujoco]`` extra) is not importable.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.errors import ConfigError

pytest.importorskip("mujoco", reason="MuJoCo is not installed (pip install 'metabench[mujoco]')")
pytest.importorskip("gymnasium.envs.mujoco", reason="gymnasium's MuJoCo envs are not importable")

IDS = ["halfcheetah-vel", "halfcheetah-dir", "ant-dir"]


@pytest.fixture(scope="module")
def envs():
    return {i: metabench.make(i) for i in IDS}


def expected_reward(env_id: str, task, inner, qpos_before, action, dt) -> tuple[float, bool]:
    """The documented reward, from the simulator state alone (not from gymnasium's info)."""
    v = (inner.data.qpos[0] - qpos_before[0]) / dt
    a = np.clip(action, -1.0, 1.0)
    if env_id == "halfcheetah-vel":
        return -abs(v - float(task.velocity)) - 0.05 * float(np.sum(a**2)), False
    if env_id == "halfcheetah-dir":
        return float(task.direction) * v - 0.05 * float(np.sum(a**2)), False
    z = inner.data.qpos[2]
    state = np.concatenate([inner.data.qpos, inner.data.qvel])
    healthy = bool(np.isfinite(state).all() and 0.2 <= z <= 1.0)
    contact = 5e-4 * float(np.sum(np.clip(inner.data.cfrc_ext, -1.0, 1.0) ** 2))
    r = float(task.direction) * v - 0.005 * float(np.sum(a**2)) - contact + 0.05 * healthy
    return r, not healthy


@pytest.mark.parametrize("env_id", IDS)
def test_rewards_match_the_formula(envs, env_id) -> None:
    env = envs[env_id]
    assert env.max_steps == 200 and env.spec.kind == "rl" and not env.functional
    rng = np.random.default_rng(0)
    for k in range(2):
        task = env.sample_task(jax.random.key(k))
        te = env.task_env(task)
        te.reset(seed=k)
        for _ in range(8):
            action = rng.uniform(-1.5, 1.5, te.action_space.shape).astype(np.float32)  # some outside the box
            before = te.inner.data.qpos.copy()
            _, r, term, trunc, _ = te.step(action)
            want, want_term = expected_reward(env_id, task, te.inner, before, action, env.dt)
            assert r == pytest.approx(want, rel=1e-6, abs=1e-6)  # float32 control costs
            assert term == want_term and not trunc
            if term:
                break
        te.close()


def test_task_distributions(envs) -> None:
    v = np.asarray(envs["halfcheetah-vel"].sample_tasks(jax.random.key(0), 500).velocity)
    assert v.min() >= 0.0 and v.max() <= 2.0 and abs(v.mean() - 1.0) < 0.1
    for env_id in ("halfcheetah-dir", "ant-dir"):
        d = np.asarray(envs[env_id].eval_tasks("test").direction)
        assert d.shape == (40,) and set(d.tolist()) == {-1.0, 1.0}
        for split in ("train", "val", "test"):  # both directions in every split (documented)
            ds = np.asarray(envs[env_id].sample_tasks(jax.random.key(1), 64, split).direction)
            assert set(ds.tolist()) == {-1.0, 1.0}


def test_bad_tasks_and_actions_are_refused(envs) -> None:
    vel, hdir = envs["halfcheetah-vel"], envs["halfcheetah-dir"]
    with pytest.raises(ConfigError, match="outside"):
        vel.check_params({"velocity": 3.0})
    with pytest.raises(ConfigError, match="direction"):
        hdir.check_params({"direction": 0.5})
    with pytest.raises(ConfigError, match="unknown"):
        hdir.check_params({"direction": 1.0, "velocity": 1.0})
    te = hdir.task_env({"direction": -1.0})
    with pytest.raises(RuntimeError, match="reset"):
        te.step(np.zeros(6, np.float32))
    te.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        te.step(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="not finite"):
        te.step(np.full(6, np.nan, np.float32))
    with pytest.raises(NotImplementedError, match="host"):
        hdir.reset(jax.random.key(0), hdir.sample_task(jax.random.key(0)))


def test_truncation_at_200_and_resets_keep_the_task(envs) -> None:
    env = envs["halfcheetah-vel"]
    task = {"velocity": 0.5}
    te = env.task_env(task)
    te.reset(seed=0)
    for t in range(200):
        _, _, term, trunc, _ = te.step(np.zeros(6, np.float32))
        assert not term and trunc == (t == 199)
    with pytest.raises(RuntimeError, match="reset"):
        te.step(np.zeros(6, np.float32))
    te.reset(seed=1)
    assert float(te.get_task().velocity) == 0.5


def test_vector_rollout_matches_single_env_stepping(envs) -> None:
    from metabench.rollout import rollout_tasks

    env = envs["halfcheetah-dir"]
    tasks = env.check_params({"direction": 1.0}), env.check_params({"direction": -1.0})
    batch = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *tasks)
    policy = lambda pp, obs, k: jnp.tanh(obs[:6] * pp)  # noqa: E731  (deterministic)
    key = jax.random.key(7)
    traj = rollout_tasks(env, policy, 0.5, batch, key, 2, horizon=6)
    assert traj.obs.shape == (2, 2, 6, 17) and traj.rewards.shape == (2, 2, 6)
    assert np.all(traj.mask == 1.0) and not traj.dones.any()
    seeds = np.asarray(jax.random.randint(jax.random.split(key)[0], (4,), 0, 2**31 - 1)).tolist()
    for i in range(2):
        for e in range(2):
            te = env.task_env(tasks[i])
            obs, _ = te.reset(seed=seeds[i * 2 + e])
            for t in range(6):
                np.testing.assert_allclose(traj.obs[i, e, t], obs.astype(np.float32), rtol=1e-6)
                a = np.asarray(policy(0.5, jnp.asarray(obs, jnp.float32), None))
                obs, r, *_ = te.step(a)
                assert traj.rewards[i, e, t] == pytest.approx(r, rel=1e-5, abs=1e-5)
    again = rollout_tasks(env, policy, 0.5, batch, key, 2, horizon=6)
    np.testing.assert_array_equal(traj.rewards, again.rewards)
    # per-task policy params (MAML's adapted theta'_i): row 1 with 0.5 equals the shared run
    mixed = rollout_tasks(env, policy, jnp.asarray([2.0, 0.5]), batch, key, 2, horizon=6, per_task_policy=True)
    np.testing.assert_array_equal(mixed.rewards[1], traj.rewards[1])
    assert not np.array_equal(mixed.rewards[0], traj.rewards[0])


@pytest.mark.parametrize("env_id", ["halfcheetah-vel", "ant-dir"])
def test_loop_vectorization_gives_the_sync_trajectories(env_id: str) -> None:
    """``vectorization="loop"`` steps the same envs with the same seeds and actions as the
    ``SyncVectorEnv`` path: identical valid steps and masks (ant-dir episodes can end early;
    the loop stops stepping them, sync auto-resets them under the mask)."""
    from metabench.rollout import rollout_tasks

    runs = {}
    for mode in ("sync", "loop"):
        env = metabench.make(env_id, vectorization=mode)
        tasks = env.sample_tasks(jax.random.key(0), 2, "train")
        shape = (env.observation_space.shape[0], env.action_space.shape[0])
        params = {"w": 3.0 * jax.random.normal(jax.random.key(1), shape)}

        def policy(pp, obs, k):
            return jnp.tanh(obs @ pp["w"]) + 0.3 * jax.random.normal(k, pp["w"].shape[1:])

        runs[mode] = rollout_tasks(env, policy, params, tasks, jax.random.key(2), 3, horizon=60)
        env.close()
    sync, loop = runs["sync"], runs["loop"]
    np.testing.assert_array_equal(loop.mask, sync.mask)
    np.testing.assert_array_equal(loop.dones, sync.dones)
    valid = sync.mask > 0
    for name in ("obs", "actions", "rewards"):
        np.testing.assert_array_equal(np.asarray(getattr(loop, name))[valid], np.asarray(getattr(sync, name))[valid])
    if env_id == "ant-dir":
        assert sync.dones.any(), "no ant-dir episode ended early: the test does not reach the alive mask"


def test_unknown_vectorization_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"vectorization must be one of \('sync', 'async', 'loop'\)"):
        metabench.make("halfcheetah-vel", vectorization="threads")


def test_missing_mujoco_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mujoco", None)  # makes `import mujoco` raise ImportError
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'metabench\[mujoco\]'"):
        metabench.make("halfcheetah-vel")
