"""MAML for RL (baselines/maml_rl.py, _policy.py, _rl_baseline.py) and RL runs through the harness."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
import metabench.baselines  # noqa: F401  (registers the learners)
from metabench.baselines._policy import SKIP_SCALE, init_policy, log_prob, policy_mean, sample_action
from metabench.baselines._rl_baseline import (
    advantages,
    baseline_weights,
    discounted_returns,
    feature_dim,
    features,
    fit_baseline,
)
from metabench.baselines.maml import MAML
from metabench.baselines.maml_rl import MamlRL, lockstep_budget, mean_episode_return, step_budget, vector_budget
from metabench.errors import ConfigError
from metabench.learner import make_learner
from metabench.rollout import Trajectories, episode_returns, rollout, rollout_tasks, tanh_box_map, unit_box_map

TINY = {"meta_batch": 2, "episodes": 2, "eval_episodes": 2, "horizon": 8, "hidden": (8,), "outer_epochs": 2}


def _leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


# -- policy ----------------------------------------------------------------------------------


def test_log_prob_is_the_diagonal_gaussian_density():
    p = init_policy(jax.random.key(0), 3, 2, (5,), log_std=-0.5)
    p = {**p, "log_std": jnp.array([-0.5, 0.3])}
    obs = jax.random.normal(jax.random.key(1), (7, 3))
    act = jax.random.normal(jax.random.key(2), (7, 2))
    want = jax.scipy.stats.norm.logpdf(act, policy_mean(p, obs), jnp.exp(p["log_std"])).sum(-1)
    np.testing.assert_allclose(log_prob(p, obs, act), want, rtol=1e-5, atol=1e-5)


def test_sample_action_has_the_policy_mean_and_std():
    p = init_policy(jax.random.key(0), 2, 2, (4,), log_std=math.log(0.5))
    obs = jnp.array([0.3, -0.2])
    acts = jax.vmap(lambda k: sample_action(p, obs, k))(jax.random.split(jax.random.key(3), 20000))
    np.testing.assert_allclose(acts.mean(0), policy_mean(p, obs), atol=0.02)
    np.testing.assert_allclose(acts.std(0), [0.5, 0.5], atol=0.02)


def test_hidden_empty_is_a_linear_policy():
    """``hidden=()`` (Nav2d's default): one Glorot layer, ``mean = obs @ w + b``, nothing else."""
    p = init_policy(jax.random.key(0), 5, 2, (), log_std=-1.0)
    (w, b), = p["layers"]
    assert w.shape == (5, 2) and b.shape == (2,) and set(p) == {"layers", "log_std"}
    obs = jax.random.normal(jax.random.key(1), (7, 5))
    b = b + jnp.array([0.5, -0.25])  # a nonzero bias must show too
    p = {**p, "layers": ((w, b),)}
    np.testing.assert_allclose(policy_mean(p, obs), obs @ w + b, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # 30-40 s each in CI; MAML-RL's smoke runs stay in the default suite
def test_tanh_mean_bounds_the_mean_and_keeps_the_gaussian_around_it():
    plain = init_policy(jax.random.key(0), 3, 2, (5,), log_std=-0.5)
    bounded = init_policy(jax.random.key(0), 3, 2, (5,), log_std=-0.5, tanh_mean=True)
    assert jax.tree_util.tree_leaves(bounded) and len(jax.tree_util.tree_leaves(bounded)) == len(
        jax.tree_util.tree_leaves(plain))  # the marker adds no parameters
    obs = 30.0 * jax.random.normal(jax.random.key(1), (7, 3))  # large inputs: the plain mean leaves the box
    assert float(jnp.max(jnp.abs(policy_mean(plain, obs)))) > 1.0
    np.testing.assert_allclose(policy_mean(bounded, obs), jnp.tanh(policy_mean(plain, obs)), rtol=1e-6)
    act = jax.random.normal(jax.random.key(2), (7, 2))
    want = jax.scipy.stats.norm.logpdf(act, jnp.tanh(policy_mean(plain, obs)), jnp.exp(-0.5)).sum(-1)
    np.testing.assert_allclose(log_prob(bounded, obs, act), want, rtol=1e-5, atol=1e-5)
    learner = make_learner("maml-rl", metabench.make("point-nav"), **TINY, tanh_mean=True)
    state = learner.init(jax.random.key(0))
    assert "tanh_mean" in state.params
    state2, metrics = learner.meta_train_step(state, learner.env.sample_tasks(jax.random.key(1), 2, "train"),
                                              jax.random.key(2))
    assert "tanh_mean" in state2.params and np.isfinite(float(metrics["loss"]))


def test_skip_adds_a_zero_initialised_linear_path_to_the_mean():
    plain = init_policy(jax.random.key(0), 3, 2, (5,))
    skipped = init_policy(jax.random.key(0), 3, 2, (5,), skip=True)
    obs = jax.random.normal(jax.random.key(1), (7, 3))
    np.testing.assert_array_equal(policy_mean(skipped, obs), policy_mean(plain, obs))  # zero at first
    w = jax.random.normal(jax.random.key(2), (3, 2))
    np.testing.assert_allclose(policy_mean({**skipped, "skip": w}, obs), policy_mean(plain, obs) + SKIP_SCALE * obs @ w,
                               rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda p: policy_mean(p, obs).sum())(skipped)["skip"]
    np.testing.assert_allclose(g, SKIP_SCALE * np.tile(np.asarray(obs).sum(0)[:, None], (1, 2)), rtol=1e-5)
    learner = make_learner("maml-rl", metabench.make("nav2d-hard"), **TINY, skip=True)
    state = learner.init(jax.random.key(0))
    state2, _ = learner.meta_train_step(state, learner.env.sample_tasks(jax.random.key(1), 2, "train"), jax.random.key(2))
    assert float(jnp.abs(state2.params["skip"]).max()) > 0.0  # the outer step trains it


# -- returns, baseline, advantages -------------------------------------------------------------


def test_discounted_returns_match_a_loop_and_ignore_masked_rewards():
    r = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    mask = np.ones((3, 6), np.float32)
    mask[1, 4:] = 0
    want = np.zeros_like(r)
    for e in range(3):
        acc = 0.0
        for t in reversed(range(6)):
            acc = r[e, t] * mask[e, t] + 0.9 * acc
            want[e, t] = acc
    np.testing.assert_allclose(discounted_returns(r, mask, 0.9), want, rtol=1e-5)


def test_linear_baseline_recovers_a_linear_target_on_valid_steps():
    obs = jax.random.uniform(jax.random.key(0), (4, 10, 2), minval=-1, maxval=1)
    mask = jnp.ones((4, 10)).at[2, 7:].set(0.0)
    f = features(obs, mask)
    assert f.shape == (4, 10, 8) and float(jnp.abs(f[2, 7:]).sum()) == 0.0
    w_true = jnp.arange(1.0, 9.0) / 4
    y = f @ w_true
    w = fit_baseline(f, y, mask)
    np.testing.assert_allclose(f @ w, y, atol=2e-2)


def test_spd_solve_matches_numpy():
    from metabench.baselines._rl_baseline import spd_solve

    m = np.random.default_rng(1).normal(size=(9, 6))
    a = (m.T @ m + 0.1 * np.eye(6)).astype(np.float32)
    b = np.arange(6, dtype=np.float32)
    np.testing.assert_allclose(spd_solve(jnp.asarray(a), jnp.asarray(b)), np.linalg.solve(a, b), rtol=1e-3, atol=1e-3)
    assert not np.all(np.isfinite(np.asarray(spd_solve(jnp.zeros((3, 3)), jnp.ones(3)))))


def _random_batch(seed: int, episodes: int, steps: int, obs_dim: int, cut: int):
    """Random ``obs [E, T, D]``, ``rewards [E, T]`` and a mask whose first episode ends at ``cut``."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    obs = jax.random.normal(k1, (episodes, steps, obs_dim))
    rew = jax.random.normal(k2, (episodes, steps))
    return obs, rew, jnp.ones((episodes, steps)).at[0, cut:].set(0.0)


def test_advantages_are_normalised_over_valid_steps_and_zero_elsewhere():
    obs, rew, mask = _random_batch(0, 5, 12, 3, cut=6)
    adv = advantages(obs, rew, mask, 0.99)
    valid = np.asarray(adv)[np.asarray(mask) > 0]
    assert abs(valid.mean()) < 1e-4 and abs(valid.std() - 1.0) < 1e-3
    assert float(jnp.abs(adv[0, 6:]).sum()) == 0.0


def test_advantages_with_given_baseline_weights():
    """The fitted weights reproduce the default; zeros mean no baseline (normalised returns-to-go)."""
    obs, rew, mask = _random_batch(3, 4, 10, 2, cut=7)
    w = baseline_weights(obs, rew, mask, 0.99)
    assert w.shape == (feature_dim(2),) == (8,)
    np.testing.assert_array_equal(advantages(obs, rew, mask, 0.99, weights=w), advantages(obs, rew, mask, 0.99))
    ret = np.asarray(discounted_returns(rew, mask, 0.99))[np.asarray(mask) > 0]
    none = np.asarray(advantages(obs, rew, mask, 0.99, weights=jnp.zeros_like(w)))[np.asarray(mask) > 0]
    np.testing.assert_allclose(none, (ret - ret.mean()) / ret.std(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(none, np.asarray(advantages(obs, rew, mask, 0.99))[np.asarray(mask) > 0], atol=1e-2)


# -- the learner --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def point_nav():
    return metabench.make("point-nav")


def test_maml_id_on_an_rl_env_is_maml_rl_with_finns_settings(point_nav):
    learner = make_learner("maml", point_nav)
    assert isinstance(learner, MamlRL)
    c = learner.config
    # point-nav: Finn et al.'s maml_trpo_point.py / test_maml_point.py step sizes and test batch
    assert (c.inner_lr, c.inner_steps, c.eval_steps, c.meta_batch, c.episodes) == (0.5, 1, 3, 20, 20)
    assert (c.eval_inner_lr, c.eval_later_lr, c.eval_episodes, c.eval_batch_steps) == (0.5, 0.25, 200, 4000)
    assert tuple(c.hidden) == (100, 100) and c.horizon == point_nav.max_steps and c.normalize_actions
    assert (c.outer, c.meta_lr) == ("trpo", 1e-3)
    # Nav2d: what was measured best (module docstring): a linear policy in displacements, PPO at 0.03
    for nav_id in ("nav2d-easy", "nav2d-hard"):
        nav = make_learner("maml", metabench.make(nav_id)).config
        assert (nav.inner_lr, nav.eval_inner_lr, nav.eval_later_lr, nav.eval_episodes) == (0.01, 0.003, 0.003, 20)
        assert (nav.hidden, nav.squash, nav.outer, nav.meta_lr, nav.eval_batch_steps) == ((), "displacement", "ppo",
                                                                                         0.03, 0)
        assert make_learner("random-policy", metabench.make(nav_id)).config.hidden == ()  # the same policy class
    own = make_learner("maml-rl", metabench.make("nav2d-easy"), inner_lr=0.2).config  # a hand-set rate wins
    assert (own.eval_inner_lr, own.eval_later_lr) == (0.2, 0.2)
    mine = make_learner("maml-rl", metabench.make("nav2d-hard"), hidden=(8,), meta_lr=0.5, outer="trpo").config
    assert (mine.hidden, mine.meta_lr, mine.outer) == ((8,), 0.5, "trpo")
    for bad in ((-1,), (0, 8), (8.5,), (True,)):
        with pytest.raises(ConfigError, match="hidden must be a tuple of positive layer sizes"):
            make_learner("maml-rl", metabench.make("nav2d-hard"), hidden=bad)
    assert make_learner("maml-rl", metabench.make("nav2d-hard"), hidden=8).config.hidden == (8,)  # one layer
    via_maml = make_learner("maml", metabench.make("nav2d-hard"), meta_lr=0.2, hidden=(8,)).config
    assert (via_maml.meta_lr, via_maml.hidden) == (0.2, (8,))
    # action squashing: clipping as Finn et al. on point-nav
    assert c.squash == "clip"
    assert make_learner("maml-rl", metabench.make("nav2d-hard"), squash="clip").config.squash == "clip"
    with pytest.raises(ConfigError, match="meta_lr must be > 0"):
        make_learner("maml-rl", point_nav, meta_lr=0.0)
    # a user-set inner_lr is used at every evaluation step unless set separately
    mine = make_learner("maml-rl", point_nav, inner_lr=0.3).config
    assert (mine.inner_lr, mine.eval_inner_lr, mine.eval_later_lr) == (0.3, 0.3, 0.3)
    shared = make_learner("maml-fo", point_nav, inner_lr=0.05, eval_steps=2, meta_batch=4)
    assert isinstance(shared, MamlRL)
    assert (shared.config.inner_lr, shared.config.eval_steps, shared.config.meta_batch) == (0.05, 2, 4)
    assert shared.config.first_order is True
    # supervised envs still get the supervised MAML
    assert type(make_learner("maml", metabench.make("sinusoid-5s"))) is MAML


def test_default_steps_are_the_published_budgets(point_nav):
    assert make_learner("maml", point_nav).default_steps == 100  # Finn et al.'s n_itr
    assert make_learner("maml", point_nav).default_val_every == 10
    assert make_learner("maml-rl", metabench.make("nav2d-hard")).default_steps == 10_000
    assert make_learner("random-policy", point_nav).default_steps == 1  # nothing to train


def test_config_errors(point_nav):
    with pytest.raises(ConfigError, match="horizon"):
        make_learner("maml-rl", point_nav, horizon=-1)
    with pytest.raises(ConfigError, match="discount"):
        make_learner("maml-rl", point_nav, discount=1.5)
    with pytest.raises(ConfigError, match="does not support"):
        make_learner("maml-rl", metabench.make("sinusoid-5s"))
    with pytest.raises(ConfigError, match="eval_later_lr"):
        make_learner("maml-rl", point_nav, eval_later_lr=-0.1)


def test_policy_acts_in_the_unit_box_rescaled_to_the_env_box(point_nav):
    """rllab's ``normalize``: policy action a in [-1, 1] -> low + (a + 1) / 2 (high - low), clipped."""
    to_box = unit_box_map(point_nav.action_space)
    np.testing.assert_allclose(to_box(jnp.array([-1.0, 1.0])), [-0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(to_box(np.array([0.5, 7.0], np.float32)), [0.05, 0.1], rtol=1e-6)
    assert unit_box_map(metabench.make("nav2d-easy").action_space) is None  # already [-1, 1]^2
    learner = make_learner("maml-rl", point_nav, **TINY)
    raw = make_learner("maml-rl", point_nav, **TINY, normalize_actions=False)
    assert raw.action_map is None
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], point_nav.eval_tasks("test", 0, 1))
    traj = learner.adaptation_trajectories(state, task, jax.random.key(2))
    # recorded actions are the policy's (std 1, mostly outside [-1, 1]); the point moved by the rescaled ones
    assert float(jnp.abs(traj.actions).max()) > 1.0
    moves = jnp.cumsum(jnp.asarray(to_box(traj.actions[0, 0])), axis=0)
    np.testing.assert_allclose(traj.obs[0, 0, 1:], moves[:-1], atol=1e-5)
    np.testing.assert_allclose(learner.predict(state, state.params, traj.obs[0, 0]),
                               to_box(policy_mean(state.params, traj.obs[0, 0])), rtol=1e-6)


def _first_task_trajectories(env, **config):
    """A tiny wide-noise learner's adaptation trajectories on the env's first test task."""
    learner = make_learner("maml-rl", env, **TINY, log_std_init=1.0, **config)
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], env.eval_tasks("test", 0, 1))
    traj = learner.adaptation_trajectories(state, task, jax.random.key(2))
    assert float(jnp.abs(traj.actions).max()) > 1.0  # the raw (unsquashed) Gaussian samples
    return learner, state, task, traj


def test_tanh_squash_moves_by_the_squashed_sample_and_keeps_the_raw_one(point_nav):
    """squash="tanh": env action = low + (tanh(u) + 1) / 2 (high - low); trajectories keep u."""
    to_box = tanh_box_map(point_nav.action_space)
    np.testing.assert_allclose(to_box(jnp.array([0.0, 50.0])), [0.0, 0.1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(to_box(jnp.array([0.5, -0.5])), [0.1 * math.tanh(0.5), -0.1 * math.tanh(0.5)],
                               rtol=1e-5)
    nav = metabench.make("nav2d-easy")
    np.testing.assert_allclose(tanh_box_map(nav.action_space)(jnp.array([0.3, -2.0])),
                               np.tanh([0.3, -2.0]), rtol=1e-6)  # [-1, 1]^2: tanh itself
    with pytest.raises(ConfigError, match="squash"):
        make_learner("maml-rl", point_nav, squash="sigmoid")
    learner, state, task, traj = _first_task_trajectories(point_nav, squash="tanh")
    moves = jnp.cumsum(jnp.asarray(to_box(traj.actions[0, 0])), axis=0)
    np.testing.assert_allclose(traj.obs[0, 0, 1:], moves[:-1], atol=1e-5)
    assert not np.allclose(moves, jnp.cumsum(unit_box_map(point_nav.action_space)(traj.actions[0, 0]), axis=0))
    np.testing.assert_allclose(learner.predict(state, state.params, traj.obs[0, 0]),
                               to_box(policy_mean(state.params, traj.obs[0, 0])), rtol=1e-6)
    # the squashing Jacobian is parameter-free: the inner step sees the Gaussian log-density of u
    clipped = make_learner("maml-rl", point_nav, **TINY, log_std_init=1.0)
    flat = jax.tree_util.tree_map(lambda x: x[0], traj)
    p_tanh = learner.inner_step(state.params, flat, 0.1)
    p_clip = clipped.inner_step(state.params, flat, 0.1)
    assert _leaves_equal(p_tanh, p_clip)


def test_displacement_squash_moves_by_the_env_map_and_keeps_the_raw_sample(point_nav):
    """squash="displacement" (Nav2d): env action = env.displacement_to_action(u); trajectories keep u."""
    nav = metabench.make("nav2d-hard")
    with pytest.raises(ConfigError, match="squash='displacement' needs an env whose action is a heading"):
        make_learner("maml-rl", point_nav, squash="displacement")
    learner, state, task, traj = _first_task_trajectories(nav, squash="displacement")
    _, s = nav.reset(jax.random.key(0), task)
    for t in range(3):  # replay the first steps through the env map
        _, s, *_ = nav.step(jax.random.key(0), s, nav.displacement_to_action(traj.actions[0, 0, t]), task)
        np.testing.assert_allclose(traj.obs[0, 0, t + 1], nav._obs(s.pos, task.goal), atol=1e-6)
    np.testing.assert_allclose(learner.predict(state, state.params, traj.obs[0, 0]),
                               nav.displacement_to_action(policy_mean(state.params, traj.obs[0, 0])), rtol=1e-6)
    flat = jax.tree_util.tree_map(lambda x: x[0], traj)
    clipped = make_learner("maml-rl", nav, **TINY, squash="clip", log_std_init=1.0)
    assert _leaves_equal(learner.inner_step(state.params, flat, 0.1), clipped.inner_step(state.params, flat, 0.1))


def test_step_budget_keeps_whole_episodes_until_the_budget_as_rllab():
    lengths = [3, 5, 2, 4]
    mask = np.zeros((4, 6), np.float32)
    for e, n in enumerate(lengths):
        mask[e, :n] = 1.0
    rewards = -np.arange(1, 25, dtype=np.float32).reshape(4, 6) * mask
    z = np.zeros_like(mask)
    traj = Trajectories(obs=np.zeros((4, 6, 2), np.float32), actions=z[..., None], rewards=rewards, dones=z > 0, mask=mask)
    # steps before each episode: 0, 3, 8, 10 -> a budget of 8 keeps the first two (the second ends past 8)
    kept = step_budget(traj, 8)
    np.testing.assert_array_equal(np.asarray(kept.mask).sum(-1), [3, 5, 0, 0])
    assert float(mean_episode_return(kept)) == pytest.approx(np.mean([rewards[0].sum(), rewards[1].sum()]))
    np.testing.assert_array_equal(np.asarray(step_budget(traj, 9).mask).sum(-1), [3, 5, 2, 0])
    assert step_budget(traj, 0) is traj
    assert float(mean_episode_return(traj)) == pytest.approx(rewards.sum(-1).mean())


def _vectorized_sampler_lengths(streams: list[list[int]], budget: int) -> list[list[int]]:
    """A literal loop of rllab's VectorizedSampler: envs step in lockstep, an env starts its next
    episode after one ends, sampling stops once the ended episodes hold >= budget steps."""
    n = len(streams)
    done: list[list[int]] = [[] for _ in range(n)]
    nxt, left, n_samples = [0] * n, [streams[i][0] for i in range(n)], 0
    while n_samples < budget:
        for i in range(n):
            if nxt[i] >= len(streams[i]):
                continue
            left[i] -= 1
            if left[i] == 0:
                done[i].append(streams[i][nxt[i]])
                n_samples += streams[i][nxt[i]]
                nxt[i] += 1
                left[i] = streams[i][nxt[i]] if nxt[i] < len(streams[i]) else 0
    return done


@pytest.mark.parametrize("seed", range(5))
def test_vector_budget_keeps_the_episodes_rllabs_vectorized_sampler_keeps(seed):
    rng = np.random.default_rng(seed)
    n_envs, per_env, horizon = 4, 12, 10
    lengths = rng.choice([1, 2, 3, 9, 10], size=(per_env, n_envs))  # episode j of env i: lengths[j, i]
    mask = (np.arange(horizon) < lengths.reshape(-1)[:, None]).astype(np.float32)
    z = np.zeros_like(mask)
    traj = Trajectories(obs=np.zeros((*mask.shape, 2), np.float32), actions=z[..., None], rewards=-mask,
                        dones=z > 0, mask=mask)
    budget = int(rng.integers(5, 4 * horizon))
    kept = np.asarray(vector_budget(traj, budget, n_envs).mask).sum(-1).reshape(per_env, n_envs)
    want = _vectorized_sampler_lengths([list(lengths[:, i]) for i in range(n_envs)], budget)
    for i in range(n_envs):
        got = [int(x) for x in kept[:, i] if x > 0]
        assert got == want[i], (i, got, want[i])
        assert np.all(kept[len(got):, i] == 0)  # an env keeps a prefix of its episodes
    assert kept.sum() >= budget  # there are enough episodes, so the batch is complete


@pytest.mark.parametrize("seed", range(3))
def test_lockstep_budget_is_the_vectorized_sampler_with_one_env_per_task(seed):
    rng = np.random.default_rng(seed)
    n_tasks, cap, horizon = 3, 10, 10
    lengths = rng.choice([1, 2, 3, 9, 10], size=(n_tasks, cap))  # episode e of task i: lengths[i, e]
    mask = (np.arange(horizon) < lengths[..., None]).astype(np.float32)
    z = np.zeros_like(mask)
    traj = Trajectories(obs=np.zeros((*mask.shape, 2), np.float32), actions=z[..., None], rewards=-mask,
                        dones=z > 0, mask=mask)
    budget = int(rng.integers(5, n_tasks * 2 * horizon))
    kept_traj = lockstep_budget(traj, budget)
    kept = np.asarray(kept_traj.mask).sum(-1)
    want = _vectorized_sampler_lengths([list(lengths[i]) for i in range(n_tasks)], budget)
    for i in range(n_tasks):
        got = [int(x) for x in kept[i] if x > 0]
        assert got == want[i], (i, got, want[i])
        assert np.all(kept[i, len(got):] == 0)
    assert kept.sum() >= budget
    assert kept_traj.obs is traj.obs  # only the mask changes


def test_train_episode_cap_trains_on_the_lockstep_batches(point_nav):
    learner = make_learner("maml-rl", point_nav, **TINY, outer="ppo", train_episode_cap=6)
    state = learner.init(jax.random.key(0))
    tasks = point_nav.sample_tasks(jax.random.key(1), 2, "train")
    c = learner.config
    budget = 2 * c.episodes * c.horizon
    pre, post, adapted = learner._collect_tasks(state.params, tasks, jax.random.key(2), 6, budget=budget)
    assert post.mask.shape[:2] == (2, 6) and pre.mask.shape[:3] == (2, c.inner_steps, 6)
    # the pre-update batch: each task's stream of 6 episodes from fold_in(key, 0), cut by the pooled budget
    streams = rollout_tasks(point_nav, sample_action, state.params, tasks, jax.random.fold_in(jax.random.key(2), 0), 6,
                            c.horizon, action_map=learner.action_map)
    first = jax.tree_util.tree_map(lambda x: x[:, 0], pre)
    np.testing.assert_array_equal(np.asarray(first.mask), np.asarray(lockstep_budget(streams, budget).mask))
    np.testing.assert_array_equal(np.asarray(first.obs), np.asarray(streams.obs))
    for batch in (first, post):
        assert float(np.asarray(batch.mask).sum()) >= budget
    # the inner step used the kept episodes only: the same step on the cut batch gives the adapted params
    per_task = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (2, *x.shape)), state.params)
    assert _leaves_equal(learner._inner_batch(per_task, first, c.inner_lr), adapted)
    step = jax.jit(learner.meta_train_step)
    s1, m1 = step(state, tasks, jax.random.key(2))
    s2, m2 = step(state, tasks, jax.random.key(2))
    assert _leaves_equal(s1.params, s2.params) and all(math.isfinite(float(v)) for v in m1.values())
    assert not _leaves_equal(s1.params, state.params)
    with pytest.raises(ConfigError, match="must be >= episodes"):
        make_learner("maml-rl", point_nav, **TINY, train_episode_cap=1)


def test_eval_envs_selects_the_vectorized_batch(point_nav):
    learner = make_learner("maml-rl", point_nav, **{**TINY, "eval_episodes": 4}, eval_batch_steps=6, eval_envs=2)
    # env 0 runs episodes 0 and 2 (2 steps each), env 1 episodes 1 and 3 (8 steps each); budget 6
    mask = (np.arange(8) < np.array([2, 8, 2, 8])[:, None]).astype(np.float32)
    z = np.zeros_like(mask)
    traj = Trajectories(obs=np.zeros((4, 8, 2), np.float32), actions=z[..., None], rewards=-mask, dones=z > 0, mask=mask)
    # lockstep: episodes 0 and 2 end at steps 2 and 4 (4 steps), episode 1 at step 8 (12 >= 6): 0, 1, 2 kept;
    # one after another (step_budget) only 0 and 1 start before 6 steps are taken
    np.testing.assert_array_equal(np.asarray(learner.eval_batch(traj).mask).sum(-1), [2, 8, 2, 0])
    np.testing.assert_array_equal(np.asarray(step_budget(traj, 6).mask).sum(-1), [2, 8, 0, 0])
    task = jax.tree_util.tree_map(lambda x: x[0], point_nav.eval_tasks("test", 0, 1))
    adapted = learner.adaptation_trajectories(learner.init(jax.random.key(0)), task, jax.random.key(1))
    # 8-step episodes (the goal is not reached so soon): after step 8 both first ones have ended
    np.testing.assert_array_equal(np.asarray(adapted.mask).sum(-1), np.tile([8, 8, 0, 0], (4, 1)))
    with pytest.raises(ConfigError, match="multiple of eval_envs"):
        make_learner("maml-rl", point_nav, **{**TINY, "eval_episodes": 5}, eval_batch_steps=10, eval_envs=2)
    with pytest.raises(ConfigError, match="set eval_batch_steps too"):
        make_learner("maml-rl", metabench.make("nav2d-hard"), **TINY, eval_envs=2)


@pytest.mark.slow  # 30-40 s each in CI; MAML-RL's smoke runs stay in the default suite
def test_eval_batches_follow_the_step_budget(point_nav):
    """Episodes of 8 steps (nothing reaches the goal so soon), budget 10: two of four are kept."""
    learner = make_learner("maml-rl", point_nav, **{**TINY, "eval_episodes": 4}, eval_batch_steps=10)
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], point_nav.eval_tasks("test", 0, 1))
    traj = learner.adaptation_trajectories(state, task, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(traj.mask).sum(-1), np.tile([8, 8, 0, 0], (4, 1)))
    curve = learner.eval_curve(state, task, jax.random.key(1))
    np.testing.assert_allclose(curve, episode_returns(traj)[:, :2].mean(-1), rtol=1e-6)


def test_evaluation_steps_after_the_first_use_eval_later_lr(point_nav):
    learner = make_learner("maml-rl", point_nav, **TINY, eval_inner_lr=0.4, eval_later_lr=0.1, eval_batch_steps=0)
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], point_nav.eval_tasks("test", 0, 1))
    key = jax.random.key(3)
    traj = learner.adaptation_trajectories(state, task, key)
    step = lambda k: jax.tree_util.tree_map(lambda x: x[k], traj)  # noqa: E731
    p1 = learner.inner_step(state.params, step(0), 0.4)
    p2 = learner.inner_step(p1, step(1), 0.1)
    again = rollout(point_nav, sample_action, p2, task, jax.random.fold_in(key, 2), 2, 8, learner.action_map)
    np.testing.assert_allclose(again.obs, traj.obs[2], rtol=1e-5, atol=1e-6)
    wrong = rollout(point_nav, sample_action, learner.inner_step(p1, step(1), 0.4), task, jax.random.fold_in(key, 2), 2,
                    8, learner.action_map)
    assert not np.allclose(wrong.obs, traj.obs[2])


@pytest.mark.slow  # 30-40 s each in CI; MAML-RL's smoke runs stay in the default suite
def test_inner_loss_takes_a_baseline_fitted_elsewhere(point_nav):
    """``baseline=`` the weights fitted on the same batch is the default loss; another batch's is not."""
    learner = make_learner("maml-rl", point_nav, **TINY, eval_batch_steps=0)
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], point_nav.eval_tasks("test", 0, 1))
    traj = learner.adaptation_trajectories(state, task, jax.random.key(5))
    step = lambda k: jax.tree_util.tree_map(lambda x: x[k], traj)  # noqa: E731
    own = baseline_weights(step(1).obs, step(1).rewards, step(1).mask, learner.config.discount)
    other = baseline_weights(step(0).obs, step(0).rewards, step(0).mask, learner.config.discount)
    default = learner.inner_loss(state.params, step(1))
    assert float(learner.inner_loss(state.params, step(1), own)) == float(default)
    g = jax.grad(learner.inner_loss)(state.params, step(1), other)
    g0 = jax.grad(learner.inner_loss)(state.params, step(1))
    assert not np.allclose(np.asarray(g["log_std"]), np.asarray(g0["log_std"]))


def test_first_order_meta_gradient_is_the_gradient_at_the_adapted_params(point_nav):
    """eq. 3.7: with first_order, d/dtheta L(theta'(theta)) = grad L(theta'); second order differs."""
    fo = make_learner("maml-rl", point_nav, **TINY, first_order=True)
    so = make_learner("maml-rl", point_nav, **TINY)
    state = fo.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], point_nav.eval_tasks("test", 0, 1))
    pre, post, adapted = fo._collect_one(state.params, task, jax.random.key(1))
    old, adv = fo._post_stats_one(adapted, post)
    old = old - 0.1  # ratios away from 1, inside the clip range
    g_fo = jax.grad(fo.ppo_loss)(state.params, pre, post, old, adv)
    g_so = jax.grad(so.ppo_loss)(state.params, pre, post, old, adv)
    g_at = jax.grad(fo.surrogate)(adapted, post, old, adv)
    for a, b in zip(jax.tree_util.tree_leaves(g_fo), jax.tree_util.tree_leaves(g_at)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    diff = sum(float(jnp.abs(a - b).sum()) for a, b in zip(jax.tree_util.tree_leaves(g_fo), jax.tree_util.tree_leaves(g_so)))
    assert diff > 1e-6


def test_meta_train_step_is_deterministic_and_updates_the_policy(point_nav):
    # PPO: from the zero-bias initialisation TRPO's line search may rightly reject the step
    # (tests/baselines/test_trpo.py::_off_the_kinks); its own determinism test is there
    learner = make_learner("maml-rl", point_nav, **TINY, outer="ppo")
    state = learner.init(jax.random.key(0))
    tasks = point_nav.sample_tasks(jax.random.key(1), 2, "train")
    step = jax.jit(learner.meta_train_step)
    s1, m1 = step(state, tasks, jax.random.key(2))
    s2, m2 = step(state, tasks, jax.random.key(2))
    assert _leaves_equal(s1.params, s2.params) and float(m1["loss"]) == float(m2["loss"])
    assert set(m1) == {"loss", "return_pre", "return_post"} and all(math.isfinite(float(v)) for v in m1.values())
    assert int(s1.step) == 1 and not _leaves_equal(s1.params, state.params)
    s3, _ = step(state, tasks, jax.random.key(3))
    assert not _leaves_equal(s1.params, s3.params)


def test_random_policy_never_changes_its_initialisation(point_nav):
    learner = make_learner("random-policy", point_nav, **TINY)
    state = learner.init(jax.random.key(0))
    new, metrics = jax.jit(learner.meta_train_step)(state, point_nav.sample_tasks(jax.random.key(1), 2, "train"),
                                                   jax.random.key(2))
    assert _leaves_equal(new.params, state.params) and float(metrics["loss"]) == 0.0


@pytest.mark.slow  # 30-40 s each in CI; MAML-RL's smoke runs stay in the default suite
def test_eval_curve_is_the_mean_return_of_the_adaptation_trajectories(point_nav):
    learner = make_learner("maml-rl", point_nav, **TINY)
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[3], point_nav.eval_tasks("test", 0, 4))
    traj = learner.adaptation_trajectories(state, task, jax.random.key(5))
    assert isinstance(traj, Trajectories) and traj.rewards.shape == (4, 2, 8)
    curve = learner.eval_curve(state, task, jax.random.key(5))
    np.testing.assert_allclose(curve, episode_returns(traj).mean(-1), rtol=1e-6)
    # the next step's policy is the inner step on this step's samples
    p1 = learner.inner_step(state.params, jax.tree_util.tree_map(lambda x: x[0], traj), learner.config.eval_inner_lr)
    again = learner.eval_curve(state._replace(params=p1), task, jax.random.key(7))
    assert again.shape == (4,) and bool(jnp.all(jnp.isfinite(again)))


def test_inner_policy_gradient_steps_improve_the_return(point_nav):
    """VPG on point-nav from a random policy (std 1 in the unit box, i.e. 0.1 in the env's): each step helps."""
    learner = make_learner("maml-rl", point_nav, episodes=20, eval_episodes=20, horizon=30, eval_steps=3,
                           hidden=(32,), inner_lr=0.3)
    state = learner.init(jax.random.key(0))
    tasks = point_nav.eval_tasks("test", 0, 8)
    curves = jax.jit(jax.vmap(learner.eval_curve, in_axes=(None, 0, 0)))(state, tasks, jax.random.split(jax.random.key(1), 8))
    mean = np.asarray(curves).mean(0)
    assert np.all(np.diff(mean) > 0) and mean[-1] > mean[0] + 2.0, mean
    # without adaptation (lr 0) the curve has no trend: the same policy is resampled
    flat = make_learner("maml-rl", point_nav, episodes=20, eval_episodes=20, horizon=30, eval_steps=3,
                        hidden=(32,), inner_lr=0.0)
    c0 = np.asarray(jax.jit(jax.vmap(flat.eval_curve, in_axes=(None, 0, 0)))(state, tasks, jax.random.split(jax.random.key(1), 8))).mean(0)
    assert abs(c0[-1] - c0[0]) < 1.0, c0


# -- the harness ---------------------------------------------------------------------------------

JAX_ENVS = ["point-nav", "nav2d-easy", "nav2d-hard"]
MUJOCO_ENVS = ["halfcheetah-vel", "halfcheetah-dir", "ant-dir"]


def _smoke(env_id, learner_id, tmp_path, **extra):
    from metabench.harness import run
    from metabench.leaderboard.store import load_result

    result = run(env_id, learner_id, steps=2, seed=0, out_dir=tmp_path, val_every=0, progress=False,
                 log_every=1, overrides={**TINY, "eval_episodes": 1, "horizon": 5, **extra})
    m = result.metric
    assert m["name"] == "return" and m["n_tasks"] == 40
    record = load_result(result.path)  # schema-valid on disk
    assert record["learner"]["id"] == learner_id
    (curve,) = record["curves"]
    assert curve["metric"] == "return" and curve["x"] == [0, 1, 2, 3] and len(curve["mean"]) == 4 and all(math.isfinite(v) for v in curve["mean"])
    assert m["mean"] == pytest.approx(curve["mean"][-1])
    return result


@pytest.mark.parametrize(
    "env_id",
    # nav2d shares point-nav's functional code path; its harness runs are in the slow suite
    [e if e == "point-nav" else pytest.param(e, marks=pytest.mark.slow) for e in JAX_ENVS],
)
def test_harness_smoke_jax_envs(env_id, tmp_path):
    _smoke(env_id, "maml-rl", tmp_path)


def test_harness_smoke_random_policy(tmp_path):
    r = _smoke("point-nav", "random-policy", tmp_path)
    init = make_learner("random-policy", metabench.make("point-nav"), **TINY).init(jax.random.fold_in(jax.random.key(0), 0))
    assert _leaves_equal(r.state.params, init.params)


@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_harness_smoke_mujoco(env_id, tmp_path):
    pytest.importorskip("mujoco", reason="MuJoCo envs need the mujoco extra")
    pytest.importorskip("gymnasium.envs.mujoco", reason="MuJoCo envs need gymnasium's MuJoCo envs")
    r = _smoke(env_id, "maml-rl", tmp_path, meta_batch=2, episodes=1)
    assert r.record["train"]["steps"] == 2


@pytest.mark.slow
def test_acceptance_command_point_nav_maml(tmp_path):
    """`metabench run --env point-nav --learner maml` with Finn's settings writes a valid result."""
    from metabench.cli import main
    from metabench.leaderboard.store import load_result

    rc = main(["run", "--env", "point-nav", "--learner", "maml", "--steps", "1", "--out", str(tmp_path),
               "--val-every", "0", "--set", "meta_batch=2"])
    assert rc in (0, None)
    (path,) = (tmp_path / "results").glob("point-nav-v0__maml__*.json")
    rec = load_result(path)
    assert rec["metrics"][0]["name"] == "return" and len(rec["curves"][0]["mean"]) == 4
    assert rec["learner"]["class"].endswith("maml_rl:MamlRL")
