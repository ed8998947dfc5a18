"""Tiny learners for harness/leaderboard/CLI tests (loaded by path from the conftests).

- ``TinyCentroid`` (classification): raw-pixel nearest-centroid classifier whose logits
  are ``-scale * ||x - c_k||^2 / D``; ``scale`` is the one meta-trained scalar.
- ``TinyRidge`` (regression): ridge regression on features ``[sin x, cos x, 1]`` with a
  meta-trained log-regularisation; its eval curve has two points (zero predictor, ridge).
  Its state carries a typed PRNG key, and ``nan_at`` injects a NaN loss at that step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metabench.learner import Learner, LearnerConfig, register_learner, learner_registry, task_metric


class CentroidState(NamedTuple):
    scale: jax.Array  # float32[]
    step: jax.Array  # int32[]


@dataclasses.dataclass(frozen=True)
class CentroidConfig(LearnerConfig):
    lr: float = 0.5
    init_scale: float = 1.0


class TinyCentroid(Learner):
    kinds = frozenset({"classification"})
    Config = CentroidConfig

    def init(self, key: Any) -> CentroidState:
        return CentroidState(jnp.float32(self.config.init_scale), jnp.int32(0))

    def adapt(self, state: Any, support: Any, key: Any) -> jax.Array:
        x, y = support
        flat = x.reshape(x.shape[0], -1)
        onehot = jax.nn.one_hot(y, self.env.ways)
        return (onehot.T @ flat) / onehot.sum(0)[:, None]  # float32[N, D]

    def predict(self, state: Any, adapted: jax.Array, x: jax.Array) -> jax.Array:
        flat = x.reshape(x.shape[0], -1)
        d2 = ((flat[:, None, :] - adapted[None]) ** 2).mean(-1)
        return -state.scale * d2

    def _loss(self, scale: jax.Array, state: Any, tasks: Any) -> jax.Array:
        def one(task: Any) -> jax.Array:
            logits = self.predict(state._replace(scale=scale), self.adapt(state, task.support, None), task.query[0])
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), task.query[1][:, None], 1))
        return jnp.mean(jax.vmap(one)(tasks))

    def meta_train_step(self, state: Any, tasks: Any, key: Any) -> tuple[Any, dict[str, jax.Array]]:
        loss, g = jax.value_and_grad(self._loss)(state.scale, state, tasks)
        return CentroidState(state.scale - self.config.lr * g, state.step + 1), {"loss": loss}


class RidgeState(NamedTuple):
    log_lam: jax.Array  # float32[]
    rng: jax.Array  # typed key
    step: jax.Array  # int32[]


@dataclasses.dataclass(frozen=True)
class RidgeConfig(LearnerConfig):
    lr: float = 0.1
    init_log_lam: float = 1.0
    nan_at: int = -1


def _features(x: jax.Array) -> jax.Array:
    return jnp.concatenate([jnp.sin(x), jnp.cos(x), jnp.ones_like(x)], axis=-1)  # float32[K, 3]


class TinyRidge(Learner):
    kinds = frozenset({"regression"})
    Config = RidgeConfig

    def init(self, key: Any) -> RidgeState:
        return RidgeState(jnp.float32(self.config.init_log_lam), key, jnp.int32(0))

    def _fit(self, log_lam: jax.Array, support: Any) -> jax.Array:
        phi = _features(support[0])
        return jnp.linalg.solve(phi.T @ phi + jnp.exp(log_lam) * jnp.eye(3), phi.T @ support[1])

    def adapt(self, state: Any, support: Any, key: Any) -> jax.Array:
        return self._fit(state.log_lam, support)

    def predict(self, state: Any, adapted: jax.Array, x: jax.Array) -> jax.Array:
        return _features(x) @ adapted

    def eval_curve(self, state: Any, task: Any, key: Any) -> jax.Array:
        x, y = task.query
        zero = task_metric("regression", jnp.zeros_like(y), y)
        ridge = task_metric("regression", self.predict(state, self.adapt(state, task.support, key), x), y)
        return jnp.stack([zero, ridge])

    def meta_train_step(self, state: Any, tasks: Any, key: Any) -> tuple[Any, dict[str, jax.Array]]:
        def loss_fn(log_lam: jax.Array) -> jax.Array:
            def one(task: Any) -> jax.Array:
                w = self._fit(log_lam, task.support)
                return jnp.mean((_features(task.query[0]) @ w - task.query[1]) ** 2)
            return jnp.mean(jax.vmap(one)(tasks))

        loss, g = jax.value_and_grad(loss_fn)(state.log_lam)
        noise = 1e-3 * jax.random.normal(jax.random.fold_in(key, 0))  # makes the learner key matter
        loss = jnp.where(state.step == self.config.nan_at, jnp.nan, loss)
        new = RidgeState(state.log_lam - self.config.lr * g + noise, jax.random.split(state.rng)[0], state.step + 1)
        return new, {"loss": loss}


TINY = {"tiny-centroid": TinyCentroid, "tiny-ridge": TinyRidge}


def register() -> None:
    for name, cls in TINY.items():
        register_learner(name, cls, f"test learner {cls.__name__}", override=True)  # type: ignore[arg-type]


def unregister() -> None:
    for name in TINY:
        learner_registry.remove(name)
