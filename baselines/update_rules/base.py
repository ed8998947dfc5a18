"""The update-rule protocol, plain SGD (MAML's eq. 3.1) and the inputs learned rules see.

A rule is a small object with meta-parameters ``rule_params`` (a pytree, learned by the
outer loop) and a per-task state ``rule_state`` (a pytree, reset for every task):

    rule_params          = rule.init(key, params)
    rule_state           = rule.init_state(rule_params, params)
    params, rule_state   = rule.update(rule_params, rule_state, params, grads, loss)

``params`` / ``grads`` are the base learner's parameter pytree and the support-loss
gradient with the same structure; ``loss`` is the scalar support loss (``None`` for rules
with ``uses_loss = False``, whose callers then need not compute it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from metabench.errors import ConfigError
from metabench.registry import did_you_mean

Params = Any
RuleParams = Any
RuleState = Any

#: Per-coordinate inputs a learned rule can be given (seed 003 §3.4.3 names the gradient and
#: the loss; ``proc`` is the preprocessing of Andrychowicz et al. 2016 §3.2 that Ravi &
#: Larochelle 2017 feed their meta-learner).
INPUTS: dict[str, int] = {"grad": 1, "grad+loss": 2, "proc": 4}


class UpdateRule:
    """Base class: SGD-free defaults (no meta-parameters, no state). See the module docstring."""

    #: whether ``update`` reads ``loss`` (else the inner loop passes ``None`` and skips it)
    uses_loss: ClassVar[bool] = False

    def init(self, key: jax.Array, params: Params) -> RuleParams:
        """Meta-parameters of the rule (``()``: none)."""
        return ()

    def init_state(self, rule_params: RuleParams, params: Params) -> RuleState:
        """Per-task state before the first inner step (``()``: stateless)."""
        return ()

    def update(
        self, rule_params: RuleParams, rule_state: RuleState, params: Params, grads: Params, loss: jax.Array | None
    ) -> tuple[Params, RuleState]:
        raise NotImplementedError

    def state_floats_per_param(self) -> int:
        """Floats of ``rule_state`` per base-learner parameter (for memory reports)."""
        return 0

    def activation_floats_per_param(self) -> int:
        """Floats per base-learner parameter that backpropagating through one ``update`` keeps
        (the meta-network's intermediate values; 0 for SGD). Used by the memory check."""
        return 0


@dataclasses.dataclass(frozen=True)
class SGD(UpdateRule):
    """``theta' = theta - lr * grad`` (eq. 3.1 of seed 003; MAML, Finn et al. 2017)."""

    lr: float

    def update(
        self, rule_params: RuleParams, rule_state: RuleState, params: Params, grads: Params, loss: jax.Array | None
    ) -> tuple[Params, RuleState]:
        return jax.tree_util.tree_map(lambda p, g: p - self.lr * g, params, grads), rule_state


def check_inputs(inputs: str, where: str) -> int:
    """Width of the per-coordinate input ``inputs``; a ConfigError with did-you-mean otherwise."""
    if inputs not in INPUTS:
        raise ConfigError(
            f"{where}: unknown inputs {inputs!r}.{did_you_mean(inputs, list(INPUTS))} Choose one of: {', '.join(INPUTS)}."
        )
    return INPUTS[inputs]


def preprocess(x: jax.Array, p: float = 10.0) -> jax.Array:
    """Andrychowicz et al. 2016 §3.2 (Ravi & Larochelle 2017 §3.3): ``float[...] -> float[..., 2]``.

    ``(log|x| / p, sign x)`` where ``|x| >= e^-p``, else ``(-1, e^p x)``: magnitudes and signs
    on comparable scales for gradients that span many orders of magnitude.
    """
    a = jnp.abs(x)
    big = a >= jnp.exp(-p)
    first = jnp.where(big, jnp.log(jnp.maximum(a, jnp.exp(-p))) / p, -1.0)
    second = jnp.where(big, jnp.sign(x), jnp.exp(p) * x)
    return jnp.stack([first, second], axis=-1)


def rule_inputs(inputs: str, grad: jax.Array, loss: jax.Array | None) -> jax.Array:
    """Per-coordinate inputs of one parameter leaf: ``float[*shape] -> float[*shape, INPUTS[inputs]]``.

    ``grad``: the raw gradient; ``grad+loss``: raw gradient and raw loss (the loss repeated
    for every coordinate, seed 003 §3.4.3); ``proc``: ``[preprocess(loss), preprocess(grad)]``
    as Ravi & Larochelle's code orders them (loss first).
    """
    if inputs == "grad":
        return grad[..., None]
    if loss is None:
        raise ValueError(f"inputs {inputs!r} need the loss")
    lo = jnp.broadcast_to(loss.astype(grad.dtype), grad.shape)
    if inputs == "grad+loss":
        return jnp.stack([grad, lo], axis=-1)
    return jnp.concatenate([preprocess(lo), preprocess(grad)], axis=-1)
