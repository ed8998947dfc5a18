"""Gradient-based learners whose inner update is a learned network (seed 003 ch. 3).

``Theta = {"theta": base-learner initialisation, "phi": the rule's meta-parameters}``,
both trained by the outer loop of ``GradientLearner`` (Algorithm 9, line 11). A learned
rule is trained for T inner steps and evaluated with the same T (``eval_steps`` defaults
to ``inner_steps``). Subclasses: ``metabench.baselines.meta_lstm`` and
``metabench.baselines.turtle``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import jax
import optax

from metabench.baselines.gradient_learner import GradientLearner, check_memory
from metabench.errors import ConfigError
from metabench.tasks import PRNGKey


class LearnedRuleLearner(GradientLearner):
    """``GradientLearner`` with ``Theta = {theta, phi}`` and an optional meta-gradient clip."""

    #: per-kind defaults of the subclass (``meta_batch``, ``inner_steps``)
    defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    @dataclasses.dataclass(frozen=True)
    class Config(GradientLearner.Config):
        """meta_grad_clip: clip the meta-gradient to this global norm before Adam (0: off).
        meta_reduce: defaults to ``"sum"``, Algorithm 9 line 11 of seed 003.
        """

        meta_reduce: Literal["mean", "sum"] = "sum"
        meta_grad_clip: float = 0.0

    def env_defaults(self, env: Any, config: Any) -> dict[str, Any]:
        d = dict(self.defaults[env.spec.kind])
        steps = d["inner_steps"] if config.inner_steps is None else config.inner_steps
        return {**d, "eval_steps": steps}

    def __init__(self, env: Any, config: Any, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        c = self.config
        if c.inner_steps < 1:
            raise ConfigError(f"{self.name}: inner_steps (T) must be >= 1 for a learned update rule, got {c.inner_steps}")
        if c.meta_grad_clip < 0:
            raise ConfigError(f"{self.name}: meta_grad_clip must be >= 0 (0: off), got {c.meta_grad_clip}")
        self.validate()
        check_memory(self, env)

    def validate(self) -> None:
        """Subclass checks of their own options (ConfigError)."""

    def make_optimizer(self) -> optax.GradientTransformation:
        c = self.config
        adam = optax.adam(c.meta_lr)
        return optax.chain(optax.clip_by_global_norm(c.meta_grad_clip), adam) if c.meta_grad_clip else adam

    def init_meta(self, key: PRNGKey) -> dict[str, Any]:
        k_theta, k_phi = jax.random.split(key)
        theta = self.model.init(k_theta)
        return {"theta": theta, "phi": self.update_rule(True).init(k_phi, theta)}

    def split(self, meta_params: Any) -> tuple[Any, Any]:
        return meta_params["theta"], meta_params["phi"]
