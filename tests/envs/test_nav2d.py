"""Nav2d (seed 002, section 3.6.3.2): spaces, dynamics, reward, the 330 / 38-step thresholds."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.envs.nav2d import Nav2dParams
from metabench.errors import ConfigError
from metabench.rollout import episode_returns, rollout, rollout_tasks

HALF = 127.5


@pytest.fixture(scope="module")
def hard():
    return metabench.make("nav2d-hard")


@pytest.fixture(scope="module")
def easy():
    return metabench.make("nav2d-easy")


def oracle(params, obs, key):
    """Walk straight at the goal: heading atan2, step min(d, 10); decoded from the observation."""
    pos, goal = obs[:2] * HALF + HALF, obs[2:4] * HALF + HALF
    delta = goal - pos
    theta = jnp.mod(jnp.arctan2(delta[1], delta[0]), 2 * jnp.pi)
    length = jnp.minimum(jnp.linalg.norm(delta), 10.0)
    return jnp.stack([theta / jnp.pi - 1.0, length / 10.0 * 2.0 - 1.0])


def task(start, goal):
    return Nav2dParams(start=jnp.asarray(start, jnp.float32), goal=jnp.asarray(goal, jnp.float32))


def test_registration_and_spaces(hard, easy) -> None:
    for env in (hard, easy):
        assert env.spec.kind == "rl" and env.spec.eval_tasks == 40 and env.max_steps == 100
        assert env.observation_space.shape == (5,) and env.action_space.shape == (2,)
        np.testing.assert_array_equal(env.observation_space.low, [-1, -1, -1, -1, 0])
        np.testing.assert_array_equal(env.observation_space.high, [1, 1, 1, 1, 1])
        np.testing.assert_array_equal(env.action_space.low, [-1, -1])


def test_easy_varies_the_start_only_hard_also_the_goal(hard, easy) -> None:
    te = easy.sample_tasks(jax.random.key(0), 50)
    th = hard.sample_tasks(jax.random.key(0), 50)
    np.testing.assert_array_equal(np.asarray(te.goal), np.full((50, 2), HALF, np.float32))
    assert np.unique(np.asarray(te.start)[:, 0]).size == 50
    assert np.unique(np.asarray(th.goal)[:, 0]).size == 50
    for t in (te, th):
        for leaf in (t.start, t.goal):
            assert float(leaf.min()) >= 0.0 and float(leaf.max()) <= 255.0


def test_observation_is_normalised_as_in_table_3_2(hard) -> None:
    obs, _ = hard.reset(jax.random.key(0), task([0.0, 255.0], [255.0, 0.0]))
    np.testing.assert_allclose(np.asarray(obs), [-1, 1, 1, -1, 1], atol=1e-6)
    obs, _ = hard.reset(jax.random.key(0), task([51.0, 102.0], [127.5, 127.5]))
    d = math.hypot(127.5 - 51.0, 127.5 - 102.0)
    np.testing.assert_allclose(np.asarray(obs), [-0.6, -0.2, 0.0, 0.0, d / (255 * math.sqrt(2))], atol=1e-6)


@pytest.mark.parametrize(
    "action, moved",
    [
        ((-1.0, 1.0), (10.0, 0.0)),  # heading 0 degrees, full step
        ((-0.5, 1.0), (0.0, 10.0)),  # 90 degrees
        ((0.0, 1.0), (-10.0, 0.0)),  # 180 degrees
        ((0.5, 0.0), (0.0, -5.0)),  # 270 degrees, half step
        ((0.3, -1.0), (0.0, 0.0)),  # zero step length
        ((-3.0, 7.0), (10.0, 0.0)),  # outside the box: clipped to (-1, 1)
    ],
)
def test_action_maps_to_angle_and_step_length(hard, action, moved) -> None:
    p = task([100.0, 100.0], [200.0, 200.0])
    _, s = hard.reset(jax.random.key(0), p)
    _, s, r, done, _ = hard.step(jax.random.key(1), s, jnp.asarray(action), p)
    np.testing.assert_allclose(np.asarray(s.pos), np.asarray([100.0, 100.0]) + moved, atol=1e-4)
    d = float(np.linalg.norm(np.asarray([200.0, 200.0]) - np.asarray(s.pos)))
    assert float(r) == pytest.approx(-d / 10 - 1, abs=1e-4)
    assert not bool(done)


@pytest.mark.parametrize("u", [(0.3, 0.4), (-0.5, 0.2), (0.0, -0.7), (-0.6, -1e-7), (2.0, 2.0), (0.0, 0.0)])
def test_displacement_to_action_moves_by_the_displacement(hard, u) -> None:
    """``displacement_to_action(u)`` moves the agent by ``u * 10`` units, capped at one full step."""
    p = task([100.0, 100.0], [200.0, 200.0])
    _, s = hard.reset(jax.random.key(0), p)
    action = hard.displacement_to_action(jnp.asarray(u))
    assert action.shape == (2,) and bool(hard.action_space.contains(np.asarray(action)))
    _, s, *_ = hard.step(jax.random.key(1), s, action, p)
    u = np.asarray(u, np.float64)
    want = u * 10.0 / max(1.0, float(np.linalg.norm(u)))
    np.testing.assert_allclose(np.asarray(s.pos), 100.0 + want, atol=1e-4)


def test_displacement_oracle_is_linear_in_the_observation_and_solves_every_task(hard) -> None:
    """u = (goal - agent) / 10 in court units, i.e. 12.75 (goal_obs - agent_obs): reaches every goal."""
    lin = lambda pp, obs, k: hard.displacement_to_action((obs[2:4] - obs[:2]) * HALF / 10.0)  # noqa: E731
    traj = rollout_tasks(hard, lin, None, hard.eval_tasks("test"), jax.random.key(0), 1)
    assert np.all(np.asarray(hard.solved(traj)))


def test_positions_are_clipped_to_the_court(hard) -> None:
    p = task([3.0, 250.0], [100.0, 100.0])
    _, s = hard.reset(jax.random.key(0), p)
    _, s, *_ = hard.step(jax.random.key(1), s, jnp.asarray([0.0, 1.0]), p)  # 10 units towards -x
    _, s, *_ = hard.step(jax.random.key(1), s, jnp.asarray([-0.5, 1.0]), p)  # 10 units towards +y
    np.testing.assert_allclose(np.asarray(s.pos), [0.0, 255.0])


def test_worst_case_oracle_needs_37_steps_and_returns_just_over_330(hard) -> None:
    p = task([0.0, 0.0], [255.0, 255.0])
    traj = rollout(hard, oracle, None, p, jax.random.key(0), 1)
    steps = int(traj.mask.sum())
    ret = float(episode_returns(traj)[0])
    assert steps == 37 and bool(traj.dones[0, 36])
    d0 = 255 * math.sqrt(2)
    expected = 1000 - 37 - sum((d0 - 10 * t) / 10 for t in range(1, 37))  # the final step's distance is ~0
    assert ret == pytest.approx(expected, abs=0.01)
    assert 330.0 < ret < 331.0
    # a first step of only 0.3 units (towards the goal) costs a 38th step and drops the return below 330
    first = jnp.asarray([-0.75, 0.3 / 10 * 2 - 1])  # heading 45 degrees, length 0.3
    detour = lambda pp, obs, k: jnp.where(obs[0] == -1.0, first, oracle(pp, obs, k))  # noqa: E731
    slow = rollout(hard, detour, None, p, jax.random.key(0), 1)
    assert int(slow.mask.sum()) == 38 and float(episode_returns(slow)[0]) < 330.0
    assert bool(hard.solved(traj)[0]) and not bool(hard.solved(slow)[0])


def test_oracle_solves_every_frozen_task(hard, easy) -> None:
    for env in (hard, easy):
        traj = rollout_tasks(env, oracle, None, env.eval_tasks("test"), jax.random.key(0), 1)
        steps = np.asarray(traj.mask.sum(-1))
        assert np.all(steps < 38) and np.all(np.asarray(traj.dones).any(-1))
        assert np.all(np.asarray(episode_returns(traj)) > 330.0)
        assert np.all(np.asarray(env.solved(traj)))
    wander = rollout_tasks(hard, lambda pp, obs, k: jnp.asarray([0.0, -0.5]), None, hard.eval_tasks("test", 0, 3), jax.random.key(0), 1)
    assert not np.any(np.asarray(hard.solved(wander)))


def test_truncation_at_100_steps_and_absorbing_after(hard) -> None:
    p = task([10.0, 10.0], [200.0, 200.0])
    still = lambda pp, obs, k: jnp.asarray([0.0, -1.0])  # noqa: E731  (step length 0)
    traj = rollout(hard, still, None, p, jax.random.key(0), 2, horizon=105)
    assert np.asarray(traj.mask).sum(-1).tolist() == [100, 100]
    assert np.asarray(traj.dones)[:, 99].all() and np.asarray(traj.dones).sum() == 2
    assert np.all(np.asarray(traj.rewards)[:, 100:] == 0)
    d = math.hypot(190, 190)
    np.testing.assert_allclose(np.asarray(traj.rewards)[:, :100], -d / 10 - 1, rtol=1e-5)


def test_reset_never_resamples_the_task(hard) -> None:
    p = hard.sample_task(jax.random.key(3))
    o1, _ = hard.reset(jax.random.key(1), p)
    o2, _ = hard.reset(jax.random.key(2), p)
    np.testing.assert_array_equal(np.asarray(o1), np.asarray(o2))
    te = hard.task_env(p)
    starts = {te.reset(seed=s)[0].tobytes() for s in range(4)}
    assert len(starts) == 1


def test_bad_tasks_are_refused(hard, easy) -> None:
    with pytest.raises(ConfigError, match="outside the court"):
        hard.check_params(task([-1.0, 5.0], [10.0, 10.0]))
    with pytest.raises(ConfigError, match="centre"):
        easy.check_params(task([1.0, 5.0], [10.0, 10.0]))
    with pytest.raises(ConfigError, match="unknown"):
        hard.check_params({"start": [1.0, 1.0], "goal": [2.0, 2.0], "speed": 3.0})
    with pytest.raises(ConfigError, match="difficulty"):
        metabench.make("nav2d-hard", difficulty="medium")


def test_gymnasium_adapter_matches_the_functional_env(hard) -> None:
    from gymnasium.utils.env_checker import check_env

    p = hard.sample_task(jax.random.key(4))
    te = hard.task_env(p)
    check_env(te, skip_render_check=True)
    obs, _ = te.reset(seed=0)
    fobs, s = hard.reset(jax.random.key(0), p)
    np.testing.assert_array_equal(obs, np.asarray(fobs))
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-1, 1, 2).astype(np.float32)
        obs, r, *_ = te.step(a)
        fobs, s, fr, *_ = hard.step(jax.random.key(0), s, jnp.asarray(a), p)
        np.testing.assert_allclose(obs, np.asarray(fobs), atol=1e-6)
        assert r == pytest.approx(float(fr), abs=1e-4)
