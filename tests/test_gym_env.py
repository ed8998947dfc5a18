"""``FamilyEnv`` (metabench/gym_env.py): gymnasium.make + check_env for every RL id, the task rule."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium", reason="needs the rl extra (pip install 'metabench[rl]')")

from gymnasium.utils.env_checker import check_env  # noqa: E402

import metabench  # noqa: E402

HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None and importlib.util.find_spec("gymnasium.envs.mujoco") is not None
RL_IDS = sorted(k for k, s in metabench.registry.items() if s.kind == "rl")


def _needs(key: str) -> list[pytest.MarkDecorator]:
    host = "locomotion" in str(metabench.registry[key].entry_point)
    return [pytest.mark.skipif(host and not HAS_MUJOCO, reason="MuJoCo is not installed (metabench[mujoco])")]


@pytest.mark.parametrize("key", [pytest.param(k, marks=_needs(k)) for k in RL_IDS])
def test_gymnasium_make_passes_check_env(key: str) -> None:
    env = gymnasium.make(f"metabench/{key}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env's warnings are failures too, but for
        warnings.filterwarnings("ignore", message=".*infinity")  # MuJoCo's own unbounded observation boxes
        check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and set(info["task"]) == set(env.unwrapped.meta_env.params_type._fields)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs in env.observation_space and isinstance(reward, float)
    env.close()


def _goal(env) -> list[float]:
    return np.asarray(env.unwrapped.get_task().goal).tolist()


def test_seeded_resets_draw_tasks_unseeded_resets_keep_them() -> None:
    env = gymnasium.make("metabench/point-nav-v0")
    env.reset(seed=1)
    g1 = _goal(env)
    env.reset()
    assert _goal(env) == g1  # a new episode of the same task
    env.reset(seed=2)
    g2 = _goal(env)
    assert g2 != g1
    env.reset(seed=1)
    assert _goal(env) == g1  # a function of the seed
    env.reset(options={"resample": True})
    assert _goal(env) not in (g1, g2)
    assert all(abs(x) <= 0.5 for x in _goal(env))


def test_split_draws_from_that_split_and_a_bad_split_says_which_exist() -> None:
    train = gymnasium.make("metabench/point-nav-v0")
    test = gymnasium.make("metabench/point-nav-v0", split="test")
    train.reset(seed=0)
    test.reset(seed=0)
    assert _goal(train) != _goal(test)
    with pytest.raises(metabench.ConfigError, match="unknown split 'tset'.*Did you mean: 'test'"):
        gymnasium.make("metabench/point-nav-v0", split="tset")


def test_fixed_tasks_never_change() -> None:
    meta = metabench.make("point-nav")
    frozen = np.asarray(meta.eval_tasks("test", 3, 4).goal[0]).tolist()
    env = gymnasium.make("metabench/point-nav-v0", task=3, split="test")
    for seed in (0, 1, None):
        env.reset(seed=seed)
        assert _goal(env) == pytest.approx(frozen)
    env = gymnasium.make("metabench/point-nav-v0", task={"goal": [0.1, -0.2]})
    env.reset(seed=5)
    assert _goal(env) == pytest.approx([0.1, -0.2])
    env.reset(options={"task": {"goal": [0.3, 0.3]}})
    assert _goal(env) == pytest.approx([0.3, 0.3])


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(metabench.ConfigError, match="outside"):
        gymnasium.make("metabench/point-nav-v0", task={"goal": [2.0, 0.0]})
    with pytest.raises(metabench.ConfigError, match="task index 40 out of range"):
        gymnasium.make("metabench/point-nav-v0", task=40)
    with pytest.raises(metabench.ConfigError, match="unknown option 'max_stpes'.*max_steps"):
        gymnasium.make("metabench/point-nav-v0", max_stpes=3)
    env = gymnasium.make("metabench/point-nav-v0")
    with pytest.raises(metabench.ConfigError, match="unknown reset options"):
        env.reset(options={"goal": 1})
    with pytest.raises(metabench.ConfigError, match="render_mode"):
        gymnasium.make("metabench/point-nav-v0", render_mode="human")


def test_env_kwargs_reach_the_metabench_env() -> None:
    env = gymnasium.make("metabench/nav2d-easy-v0", max_steps=4)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, np.float32))[2:4] for _ in range(4)]
    assert flags[-1] == (False, True) and not any(any(f) for f in flags[:-1])
