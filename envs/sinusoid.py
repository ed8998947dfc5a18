"""Sinusoid regression (Finn et al. 2017, section 5.1).

Task: ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]``, phase ``phi ~ U[0, pi]``,
inputs ``x ~ U[-5, 5]``. K-shot support, Q queries. The distribution is continuous, so
the splits share it and differ only in their keys; the frozen evaluation sets are
derived from the spec's ``eval_seed``.

Version history: v0, initial.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from metabench.env import MetaEnv, positive_int
from metabench.errors import ConfigError
from metabench.spec import EnvSpec
from metabench.tasks import PRNGKey, SupervisedTask


class Sinusoid(MetaEnv):
    """Shapes: support ``(x: float32[K, 1], y: float32[K, 1])``, query with ``Q`` rows."""

    kind: ClassVar[str] = "regression"

    def __init__(
        self,
        spec: EnvSpec,
        *,
        shots: int,
        queries: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, jnp.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ):
        super().__init__(spec)
        self.shots = positive_int("shots", shots, spec.id)
        self.queries = positive_int("queries", queries, spec.id)
        for name, (lo, hi) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not lo <= hi:
                raise ConfigError(f"{spec.id}: {name} must be (low, high) with low <= high, got {(lo, hi)}")
        self.amplitude = tuple(float(v) for v in amplitude)
        self.phase = tuple(float(v) for v in phase)
        self.x_range = tuple(float(v) for v in x_range)
        self.spec = spec.replace(data_hash="synthetic")

    def task_params(self, key: PRNGKey) -> tuple[jax.Array, jax.Array]:
        """``(amplitude, phase)`` of the task drawn from ``key`` (the same key as ``sample_task``)."""
        k_a, k_p, _ = jax.random.split(key, 3)
        amp = jax.random.uniform(k_a, (), minval=self.amplitude[0], maxval=self.amplitude[1])
        phase = jax.random.uniform(k_p, (), minval=self.phase[0], maxval=self.phase[1])
        return amp, phase

    def _sample(self, key: PRNGKey, split: str) -> SupervisedTask:
        amp, phase = self.task_params(key)
        k_x = jax.random.split(key, 3)[2]
        x = jax.random.uniform(
            k_x, (self.shots + self.queries, 1), minval=self.x_range[0], maxval=self.x_range[1]
        )
        y = amp * jnp.sin(x - phase)
        return SupervisedTask(
            support=(x[: self.shots], y[: self.shots]), query=(x[self.shots :], y[self.shots :])
        )
