"""Smoke run of every registered learner on every task family (default suite).

Each learner is built with tiny settings, takes one meta-train step on a batch of two
tasks and evaluates one task; outputs must be finite and the curve non-empty. A learner
that does not support a family's kind must refuse it with a ``ConfigError`` before any
training. A new learner or family is covered by registering it (add tiny settings below
if its defaults are heavy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest

import metabench
from metabench.baselines._synthetic import synthetic_env
from metabench.errors import ConfigError
from metabench.learner import learner_class, learner_registry

#: Tiny settings per config field name, applied where a learner's Config has the field.
TINY: dict[str, Any] = {
    "channels": 4,
    "hidden": (8,),
    "meta_batch": 2,
    "inner_steps": 1,
    "eval_steps": 1,
    "population": 4,
    "population_per_device": 0,
    "episodes": 2,
    "eval_episodes": 2,
    "horizon": 5,
    "outer_epochs": 1,
    "candidate_batch": 0,
    "batch_size": 4,  # transfer learners' pre-training batch (the 84x84x3 smoke env has 12 training images)
    "ft_epochs": 2,
}
#: Per-learner exceptions to TINY (finite differences need population = params + 1).
PER_LEARNER: dict[str, dict[str, Any]] = {"fd-protonet": {"population": 0, "channels": 2, "depth": 1}, "es-maml": {"candidate_batch": 1}}


def _mujoco(env_id: str) -> Callable[[], Any]:
    def build() -> Any:
        pytest.importorskip("mujoco", reason="MuJoCo not installed: pip install 'metabench[mujoco]'")
        return metabench.make(env_id)

    return build


FAMILIES: dict[str, Callable[[], Any]] = {
    "sinusoid": lambda: metabench.make("sinusoid-5s"),
    "images-28x28x1": lambda: synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6),
    "images-84x84x3": lambda: _rgb_env(),
    "point-nav": lambda: metabench.make("point-nav"),  # the functional JAX RL envs (nav2d shares its code)
    "mujoco": _mujoco("halfcheetah-vel"),  # every MuJoCo id has its own smoke run in test_maml_rl.py
}


def _rgb_env() -> Any:
    """miniImageNet/CUB-shaped (84x84x3) synthetic classification env."""
    from metabench.classification import ClassificationEnv, ImagePool, SplitTable
    from metabench.spec import EnvSpec

    class RGB(ClassificationEnv):
        def _load(self):  # type: ignore[no-untyped-def]
            rng = np.random.default_rng(0)
            groups = [rng.integers(0, 256, (4, 84, 84, 3), dtype=np.uint8) for _ in range(9)]
            pool = ImagePool.from_groups(groups, [f"c{i}" for i in range(9)])
            return pool, {"train": SplitTable.of(range(3)), "val": SplitTable.of(range(3, 6)),
                          "test": SplitTable.of(range(6, 9))}, "synthetic-rgb"

    spec = EnvSpec(id="rgb-3w1s-v0", entry_point="x:RGB", kind="classification", eval_tasks=4)
    return RGB(spec, ways=3, shots=1, queries=2)


_ENVS: dict[str, Any] = {}


def _env(family: str) -> Any:
    if family not in _ENVS:
        _ENVS[family] = FAMILIES[family]()
    return _ENVS[family]


def _tiny(learner_id: str) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(learner_class(learner_id).Config)}
    wanted = {**TINY, **PER_LEARNER.get(learner_id, {})}
    return {k: v for k, v in wanted.items() if k in fields}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("learner_id", sorted(learner_registry))
def test_learner_smoke_on_family(learner_id: str, family: str) -> None:
    env = _env(family)
    cls = learner_class(learner_id)
    if env.spec.kind not in cls.kinds:
        with pytest.raises(ConfigError, match="does not support"):
            metabench.make_learner(learner_id, env, **_tiny(learner_id))
        return
    learner = metabench.make_learner(learner_id, env, **_tiny(learner_id))
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), learner.config.meta_batch, "train")
    step = learner.meta_train_step if not getattr(learner, "jittable", True) else jax.jit(learner.meta_train_step)
    state, metrics = step(state, tasks, jax.random.key(2))
    assert "loss" in metrics and np.isfinite(float(metrics["loss"])), metrics
    task = jax.tree_util.tree_map(lambda x: x[0], env.eval_tasks("test", 0, 1))
    curve = np.asarray(learner.eval_curve(state, task, jax.random.key(3)))
    assert curve.ndim == 1 and curve.shape[0] >= 1 and np.all(np.isfinite(curve)), curve
