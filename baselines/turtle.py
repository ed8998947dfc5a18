"""TURTLE: stateless neural meta-learning with second-order gradients (seed 003 §3.4.3).

The base learner's initialisation ``theta``, a feed-forward meta-network ``g_phi`` and a
per-parameter learning rate ``alpha`` are learned together; each inner step is eq. 3.7,
``theta <- theta + alpha (.) g_phi(I)`` (``update_rules.turtle``), and the meta-gradient
backpropagates through the whole trajectory (second order, ``turtle``) or treats the
inner gradients as constants (``turtle-fo``, seed 003 Fig. 3.2 and Table 3.1).

Defaults (seed 003): ``g_phi`` with 5 hidden layers of 20 ReLU units (§3.5.1), the raw
gradient as its only input (§3.5.1), ``alpha ~ U[0, 1)`` learned (seed 003's code), T = 5
inner steps (§3.5.3, "5-step TURTLE"; the same T on sinusoid, where the seed's Fig. 3.3
does not state it), Adam 1e-3, the sum of the query losses over the meta-batch
(Algorithm 9 line 11). The seed does not give TURTLE's meta-batch: MAML's per-env
meta-batch is used (25 sinusoid tasks, 32 5-way and 16 20-way image tasks).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from metabench.baselines.learned_rule import LearnedRuleLearner
from metabench.baselines.maml import _defaults
from metabench.baselines.update_rules.base import check_inputs
from metabench.baselines.update_rules.turtle import Turtle as TurtleRule
from metabench.errors import ConfigError


class Turtle(LearnedRuleLearner):
    """TURTLE (eq. 3.7) on the Conv-4 / MLP base learner."""

    name: ClassVar[str] = "turtle"

    @dataclasses.dataclass(frozen=True)
    class Config(LearnedRuleLearner.Config):
        """TURTLE options (besides the core's).

        inputs: ``"grad"`` (raw gradient, §3.5.1), ``"grad+loss"`` (gradient and loss, the
            two inputs §3.4.3 names) or ``"proc"`` (Ravi & Larochelle's preprocessing).
        layers: hidden layer widths of ``g_phi`` (§3.5.1: five of 20).
        alpha_init: initial per-parameter learning rate (``None``: ``U[0, 1)``).
        learn_alpha: learn ``alpha`` (False: fixed, as §3.5.1's vector of ones).
        """

        inputs: Literal["grad", "grad+loss", "proc"] = "grad"
        layers: tuple[int, ...] = (20, 20, 20, 20, 20)
        alpha_init: float | None = None
        learn_alpha: bool = True

    def env_defaults(self, env: Any, config: Any) -> dict[str, Any]:
        steps = 5 if config.inner_steps is None else config.inner_steps
        return {"meta_batch": _defaults(env)["meta_batch"], "inner_steps": 5, "eval_steps": steps}

    def validate(self) -> None:
        c = self.config
        check_inputs(c.inputs, self.name)
        if not c.layers or any(int(w) < 1 for w in c.layers):
            raise ConfigError(f"{self.name}: layers must be one or more positive widths, got {tuple(c.layers)}")

    def update_rule(self, train: bool) -> TurtleRule:
        c = self.config
        return TurtleRule(inputs=c.inputs, hidden=tuple(int(w) for w in c.layers), alpha_init=c.alpha_init,
                          learn_alpha=c.learn_alpha)
