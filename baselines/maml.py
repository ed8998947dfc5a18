"""MAML: Model-Agnostic Meta-Learning (Finn et al. 2017; Algorithm 2 / section 3.3 of seed 002).

Inner loop (eq. 3.1): ``theta'_i = theta - alpha * grad L_i^support(theta)``, ``inner_steps``
times. Meta-objective: the query loss at ``theta'_i``, reduced over the meta-batch by its
**mean** (eq. 3.8, ``meta_reduce="mean"``, the default, as in Finn et al.'s code) or its
**sum** (eq. 3.3, ``meta_reduce="sum"``), minimised with Adam (``meta_lr``).

* second order (``first_order=False``, id ``maml``): the meta-gradient differentiates through
  the inner loop (eq. 3.4-3.6, Hessian-vector products included);
* first order (``first_order=True``, id ``maml-fo``): inner gradients are wrapped in
  ``stop_gradient``, so the meta-gradient is ``sum_i grad L_i^query(theta'_i)`` (eq. 3.7).

Backbones (``metabench.baselines.backbones``): Conv-4 with an N-way head for images, MLP
1-40-40-1 for regression. Batch norm uses the statistics of the current batch in the
inner loop, the outer loop and evaluation alike, without running averages (Finn et al.'s
reference behaviour, "transductive"): the support batch normalises itself in inner steps,
the query batch normalises itself in the meta-loss and at evaluation.

Defaults left at ``None`` (or ``meta_batch=0``) are resolved from the env when the learner
is built, following Finn et al. 2017 (section 5 and their published run commands):

=====================  ==========  ===========  ==========  ==========
env                    inner_lr    inner_steps  eval_steps  meta_batch
=====================  ==========  ===========  ==========  ==========
regression (sinusoid)  0.01        1            10          25
classification < 20w   0.4         1            3           32
classification >= 20w  0.1         5            5           16
=====================  ==========  ===========  ==========  ==========

``learner.config`` holds the resolved values (so results record what actually ran).

MAML is the update rule ``theta - alpha * grad`` (``update_rules.SGD``) on the shared
gradient-learner core (``metabench.baselines.gradient_learner``, seed 003 Algorithm 9),
which the meta-learner LSTM and TURTLE use with their own rules.

On RL envs (kind ``"rl"``) ``MAML(env, config)`` returns MAML for RL
(``metabench.baselines.maml_rl.MamlRL``, Finn et al. 2017 section 5.3), built from the
shared config names; its RL-only options are set through the ``maml-rl`` id.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax

from metabench.baselines.gradient_learner import GradientLearner, MamlState
from metabench.baselines.update_rules import SGD, UpdateRule

__all__ = ["MAML", "MamlState"]


def _defaults(env: Any) -> dict[str, Any]:
    if env.spec.kind == "regression":
        return {"inner_lr": 0.01, "inner_steps": 1, "eval_steps": 10, "meta_batch": 25}
    if int(getattr(env, "ways", 5)) >= 20:
        return {"inner_lr": 0.1, "inner_steps": 5, "eval_steps": 5, "meta_batch": 16}
    return {"inner_lr": 0.4, "inner_steps": 1, "eval_steps": 3, "meta_batch": 32}


class MAML(GradientLearner):
    """Second- or first-order MAML over a vmapped (or sequentially mapped) meta-batch."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression", "rl"})
    name: ClassVar[str] = "maml"
    help_note: ClassVar[str] = ("on RL envs (nav2d, point-nav, MuJoCo) maml is MAML for RL, whose options "
                                "`metabench list learners maml-rl` lists")

    def __new__(cls, env: Any, config: Any = None, mesh: Any = None) -> Any:
        """On an RL env, ``MAML(env, config)`` is MAML for RL (``metabench.baselines.maml_rl``)."""
        if cls is MAML and getattr(getattr(env, "spec", None), "kind", None) == "rl":
            from metabench.baselines.maml_rl import MamlRL

            return MamlRL.from_maml_config(env, config if config is not None else cls.Config(), mesh)
        return super().__new__(cls)

    @dataclasses.dataclass(frozen=True)
    class Config(GradientLearner.Config):
        """MAML hyperparameters: the core's (``GradientLearner.Config``) and the step size.

        inner_lr: alpha of eq. 3.1 in meta-training (``None``: by env, the module table).
        eval_inner_lr: alpha at evaluation (``None``: ``inner_lr``).
        """

        inner_lr: float | None = None
        eval_inner_lr: float | None = None

    def env_defaults(self, env: Any, config: Any) -> dict[str, Any]:
        return _defaults(env)

    def __init__(self, env: Any, config: Config, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        c = self.config
        self.config = dataclasses.replace(c, eval_inner_lr=c.inner_lr if c.eval_inner_lr is None else c.eval_inner_lr)

    def update_rule(self, train: bool) -> UpdateRule:
        """eq. 3.1 with ``inner_lr`` (meta-training) or ``eval_inner_lr`` (evaluation)."""
        return SGD(self.config.inner_lr if train else self.config.eval_inner_lr)
