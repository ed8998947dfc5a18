"""A tiny inner learner for the ES wrapper tests: linear regression on fixed sine features.

Meta-parameters ``w: float32[3, 1]``; prediction ``[sin x, cos x, 1] @ w``; no adaptation.
Its meta-loss (query MSE averaged over the task batch) is what the ES learners optimise.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from metabench.baselines.es.es_learner import ESLearner, es_config
from metabench.learner import Learner, LearnerConfig


def features(x: jax.Array) -> jax.Array:
    return jnp.concatenate([jnp.sin(x), jnp.cos(x), jnp.ones_like(x)], axis=-1)


class ToyRegressor(Learner):
    kinds: ClassVar[frozenset[str]] = frozenset({"regression"})

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        init_scale: float = 0.1
        nan_after: float = 0.0  # >0: meta_loss is NaN once |w| exceeds this (collapse tests)

    def init(self, key: jax.Array) -> dict[str, Any]:
        return {"w": self.config.init_scale * jax.random.normal(key, (3, 1))}

    def meta_params(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"w": state["w"]}

    def with_meta_params(self, state: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return {**state, "w": params["w"]}

    def meta_loss(self, params: dict[str, Any], tasks: Any, key: jax.Array) -> jax.Array:
        x, y = tasks.query
        loss = jnp.mean((features(x) @ params["w"] - y) ** 2)
        if self.config.nan_after > 0:
            loss = jnp.where(jnp.abs(params["w"]).max() > self.config.nan_after, jnp.nan, loss)
        return loss

    def meta_train_step(self, state, tasks, key):  # pragma: no cover - not used by the ES tests
        raise NotImplementedError

    def adapt(self, state, support, key):
        return None

    def predict(self, state, adapted, x):
        return features(x) @ state["w"]


class ESToy(ESLearner):
    inner_class = ToyRegressor
    kinds = ToyRegressor.kinds
    Config = es_config(ToyRegressor.Config)
