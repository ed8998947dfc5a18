"""``gymnasium.make_vec`` on metabench ids (metabench/gym_vector.py): JAX-batched and sync vector envs."""

from __future__ import annotations

import importlib.util

import jax
import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium", reason="needs the rl extra (pip install 'metabench[rl]')")

import metabench  # noqa: E402
from metabench.gym_vector import JaxVectorEnv  # noqa: E402

HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None and importlib.util.find_spec("gymnasium.envs.mujoco") is not None


@pytest.mark.parametrize("key", ["point-nav-v0", "nav2d-easy-v0", "nav2d-hard-v0"])
def test_jax_ids_give_a_jax_batched_vector_env(key: str) -> None:
    envs = gymnasium.make_vec(f"metabench/{key}", num_envs=3)
    assert isinstance(envs, JaxVectorEnv) and envs.num_envs == 3
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, *envs.single_observation_space.shape) and obs in envs.observation_space
    for _ in range(3):
        obs, reward, term, trunc, _ = envs.step(envs.action_space.sample())
        assert obs in envs.observation_space
        assert reward.shape == term.shape == trunc.shape == (3,) and term.dtype == np.bool_
    again = gymnasium.make_vec(f"metabench/{key}", num_envs=3)
    obs2, info2 = again.reset(seed=0)
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(info["task"])[0],
                                  jax.tree_util.tree_leaves(info2["task"])[0])  # tasks: a function of the seed
    np.testing.assert_array_equal(obs2, envs.reset(seed=0)[0])


def test_steps_equal_the_functional_env_per_task() -> None:
    envs = gymnasium.make_vec("metabench/point-nav-v0", num_envs=4)
    _, info = envs.reset(seed=3)
    goals = info["task"]["goal"]
    assert len({tuple(g) for g in goals.tolist()}) == 4  # one task per env
    meta = envs.meta_env
    rng = np.random.default_rng(0)
    states = [meta.reset(jax.random.key(0), meta.params_type(goal=g))[1] for g in goals]
    for _ in range(5):
        actions = rng.uniform(-0.1, 0.1, (4, 2)).astype(np.float32)
        obs, reward, _, _, _ = envs.step(actions)
        for i in range(4):
            o, states[i], r, _, _ = meta.step(jax.random.key(0), states[i], actions[i], meta.params_type(goal=goals[i]))
            np.testing.assert_allclose(obs[i], np.asarray(o), rtol=1e-6)
            np.testing.assert_allclose(reward[i], float(r), rtol=1e-6)


def test_next_step_autoreset_keeps_the_task() -> None:
    envs = gymnasium.make_vec("metabench/point-nav-v0", num_envs=2, max_steps=3)
    _, info = envs.reset(seed=0)
    goals = np.asarray(envs.get_task().goal)
    step = np.full((2, 2), 0.05, np.float32)
    for _ in range(2):
        _, _, term, trunc, _ = envs.step(step)
        assert not (term | trunc).any()
    obs, _, term, trunc, _ = envs.step(step)
    assert trunc.all() and not term.any()
    obs, reward, term, trunc, _ = envs.step(step)  # the autoreset step: new episode, same task
    np.testing.assert_array_equal(obs, np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(reward, [0.0, 0.0])
    assert not (term | trunc).any()
    np.testing.assert_array_equal(np.asarray(envs.get_task().goal), goals)
    obs, _, _, _, _ = envs.step(step)
    np.testing.assert_allclose(obs, step)  # the new episode moves from the origin
    envs.reset()
    np.testing.assert_array_equal(np.asarray(envs.get_task().goal), goals)  # unseeded reset keeps them
    envs.reset(seed=1)
    assert not np.array_equal(np.asarray(envs.get_task().goal), goals)


def test_fixed_task_and_bad_actions() -> None:
    envs = gymnasium.make_vec("metabench/point-nav-v0", num_envs=2, task={"goal": [0.2, 0.1]})
    envs.reset(seed=0)
    np.testing.assert_allclose(np.asarray(envs.get_task().goal), [[0.2, 0.1], [0.2, 0.1]])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        envs.step(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not finite"):
        envs.step(np.full((2, 2), np.nan))
    with pytest.raises(RuntimeError, match="reset"):
        gymnasium.make_vec("metabench/point-nav-v0", num_envs=2).step(np.zeros((2, 2)))
    with pytest.raises(metabench.ConfigError, match="num_envs"):
        gymnasium.make_vec("metabench/point-nav-v0", num_envs=0)


@pytest.mark.skipif(not HAS_MUJOCO, reason="MuJoCo is not installed (metabench[mujoco])")
def test_mujoco_ids_give_gymnasiums_sync_vector_env() -> None:
    envs = gymnasium.make_vec("metabench/halfcheetah-dir-v0", num_envs=2)
    assert isinstance(envs, gymnasium.vector.SyncVectorEnv)
    obs, info = envs.reset(seed=0)
    assert obs.shape == (2, 17) and info["task"]["direction"].shape == (2,)
    obs, reward, term, trunc, _ = envs.step(envs.action_space.sample())
    assert obs.shape == (2, 17) and reward.shape == (2,)
    envs.close()
