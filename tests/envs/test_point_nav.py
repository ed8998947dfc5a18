"""2-D point navigation of Finn et al. 2017."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.envs.point_nav import PointNavParams
from metabench.errors import ConfigError
from metabench.rollout import episode_returns, rollout


@pytest.fixture(scope="module")
def env():
    return metabench.make("point-nav")


def goal(x, y):
    return PointNavParams(goal=jnp.asarray([x, y], jnp.float32))


def test_goals_are_uniform_in_the_square(env) -> None:
    g = np.asarray(env.sample_tasks(jax.random.key(0), 2000).goal)
    assert g.min() >= -0.5 and g.max() <= 0.5
    assert abs(g.mean()) < 0.03 and g.std() == pytest.approx(1 / np.sqrt(12), abs=0.02)


def test_start_at_origin_reward_is_minus_distance_actions_clipped(env) -> None:
    p = goal(0.3, -0.2)
    obs, s = env.reset(jax.random.key(0), p)
    np.testing.assert_array_equal(np.asarray(obs), [0.0, 0.0])
    obs, s, r, done, _ = env.step(jax.random.key(0), s, jnp.asarray([1.0, -0.05]), p)
    np.testing.assert_allclose(np.asarray(obs), [0.1, -0.05], atol=1e-7)
    assert float(r) == pytest.approx(-np.hypot(0.2, 0.15), abs=1e-6) and not bool(done)


def test_goal_reached_terminates(env) -> None:
    p = goal(0.25, 0.05)
    towards = lambda pp, obs, k: jnp.clip(p.goal - obs, -0.1, 0.1)  # noqa: E731
    traj = rollout(env, towards, None, p, jax.random.key(0), 1)
    assert int(traj.mask.sum()) == 3 and bool(traj.dones[0, 2])
    assert float(episode_returns(traj)[0]) == pytest.approx(-(np.hypot(0.15, 0.0) + np.hypot(0.05, 0.0) + 0.0), abs=1e-4)


def test_horizon_is_100_and_episodes_share_the_goal(env) -> None:
    p = env.sample_task(jax.random.key(1))
    away = lambda pp, obs, k: -jnp.sign(p.goal) * 0.1  # noqa: E731
    traj = rollout(env, away, None, p, jax.random.key(0), 3, horizon=120)
    assert np.asarray(traj.mask).sum(-1).tolist() == [100, 100, 100]
    np.testing.assert_array_equal(np.asarray(traj.rewards[0]), np.asarray(traj.rewards[2]))
    assert np.all(np.asarray(traj.obs)[:, :100] <= 10.0)


def test_bad_tasks_and_actions(env) -> None:
    with pytest.raises(ConfigError, match="outside"):
        env.check_params(goal(0.7, 0.0))
    _, s = env.reset(jax.random.key(0), goal(0.1, 0.1))
    with pytest.raises(ConfigError, match="shape"):
        env.step(jax.random.key(0), s, jnp.zeros(3), goal(0.1, 0.1))
    # documented: a NaN action is not masked in the functional form; it shows up in the reward
    _, _, r, _, _ = env.step(jax.random.key(0), s, jnp.asarray([jnp.nan, 0.0]), goal(0.1, 0.1))
    assert np.isnan(float(r))
    te = env.task_env(goal(0.1, 0.1))
    te.reset(seed=0)
    with pytest.raises(ValueError, match="not finite"):
        te.step(np.asarray([np.nan, 0.0], np.float32))
