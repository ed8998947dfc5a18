"""Update rules: how a gradient-based learner turns a support-set gradient into new weights.

Seed 003 (Huisman 2024, ch. 3, Algorithm 9) writes MAML, the meta-learner LSTM and TURTLE
as one algorithm that differs only in line 8, the inner update: eq. 3.1 (``sgd``),
eq. 3.3 (``meta_lstm``) or eq. 3.7 (``turtle``). Each rule here is that line, as a small
object with its own meta-parameters; ``metabench.baselines.gradient_learner`` owns the
rest of the algorithm (inner loop, first/second order, meta-batch, curves).
"""

from metabench.baselines.update_rules.base import SGD, UpdateRule, rule_inputs

__all__ = ["SGD", "UpdateRule", "rule_inputs"]
