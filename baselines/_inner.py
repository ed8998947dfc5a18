"""Inner loops shared by every gradient-based learner: one loop, any update rule.

``loss_fn(params, x, y) -> scalar``. One inner step computes the support loss and its
gradient and hands both to an update rule (``metabench.baselines.update_rules``): SGD is
``theta' = theta - alpha * grad`` (eq. 3.1 of seed 003 / seed 002), the meta-learner LSTM
eq. 3.3, TURTLE eq. 3.7 -- Algorithm 9 of seed 003, line 8. With ``first_order`` the
gradient and the loss are wrapped in ``stop_gradient``, so differentiating through the
loop gives the first-order meta-gradient (MAML: eq. 3.7 of seed 002, the Hessian term
replaced by the identity; the meta-learner LSTM: Ravi & Larochelle's assumption that its
inputs do not depend on the meta-parameters, seed 003 §3.3.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from metabench.baselines.update_rules import SGD, UpdateRule

LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


def rule_step(
    loss_fn: LossFn,
    rule: UpdateRule,
    rule_params: Any,
    params: Any,
    rule_state: Any,
    data: tuple[jax.Array, jax.Array],
    first_order: bool,
) -> tuple[Any, Any]:
    """One inner step on ``data = (x, y)``: ``(params', rule_state')``."""
    if rule.uses_loss:
        loss, g = jax.value_and_grad(loss_fn)(params, *data)
    else:
        loss, g = None, jax.grad(loss_fn)(params, *data)
    if first_order:
        g = jax.lax.stop_gradient(g)
        loss = None if loss is None else jax.lax.stop_gradient(loss)
    return rule.update(rule_params, rule_state, params, g, loss)


def rule_adapt(
    loss_fn: LossFn,
    rule: UpdateRule,
    rule_params: Any,
    params: Any,
    data: tuple[jax.Array, jax.Array],
    steps: int,
    *,
    first_order: bool = False,
    scan: bool = False,
) -> Any:
    """``steps`` inner steps of ``rule`` from ``params``; unrolled, or ``lax.scan`` when ``scan``."""
    if steps == 0:
        return params
    state = rule.init_state(rule_params, params)
    body = lambda c, _: (rule_step(loss_fn, rule, rule_params, c[0], c[1], data, first_order), None)  # noqa: E731
    if scan:
        return jax.lax.scan(body, (params, state), None, length=steps)[0][0]
    carry = (params, state)
    for _ in range(steps):
        carry = body(carry, None)[0]
    return carry[0]


def rule_adaptation_curve(
    loss_fn: LossFn,
    metric_fn: Callable[[Any, jax.Array, jax.Array], jax.Array],
    rule: UpdateRule,
    rule_params: Any,
    params: Any,
    support: tuple[jax.Array, jax.Array],
    query: tuple[jax.Array, jax.Array],
    steps: int,
) -> jax.Array:
    """``float32[steps + 1]``: ``metric_fn`` on the query set after 0, 1, ..., ``steps`` steps."""
    if steps == 0:
        return metric_fn(params, *query).astype(jnp.float32)[None]

    def body(c: tuple[Any, Any], _: Any) -> tuple[tuple[Any, Any], jax.Array]:
        m = metric_fn(c[0], *query)
        return rule_step(loss_fn, rule, rule_params, c[0], c[1], support, True), m

    (p, _), ms = jax.lax.scan(body, (params, rule.init_state(rule_params, params)), None, length=steps)
    return jnp.concatenate([ms, metric_fn(p, *query)[None]]).astype(jnp.float32)


# -- plain gradient descent (MAML's rule), the names other learners use --------------------


def sgd_step(loss_fn: LossFn, params: Any, data: tuple[jax.Array, jax.Array], lr: float, first_order: bool) -> Any:
    """One SGD inner step on ``data = (x, y)`` (eq. 3.1)."""
    return rule_step(loss_fn, SGD(lr), (), params, (), data, first_order)[0]


def inner_adapt(
    loss_fn: LossFn,
    params: Any,
    data: tuple[jax.Array, jax.Array],
    lr: float,
    steps: int,
    *,
    first_order: bool = False,
    scan: bool = False,
) -> Any:
    """``steps`` SGD inner steps (eq. 3.1)."""
    return rule_adapt(loss_fn, SGD(lr), (), params, data, steps, first_order=first_order, scan=scan)


def adaptation_curve(
    loss_fn: LossFn,
    metric_fn: Callable[[Any, jax.Array, jax.Array], jax.Array],
    params: Any,
    support: tuple[jax.Array, jax.Array],
    query: tuple[jax.Array, jax.Array],
    lr: float,
    steps: int,
) -> jax.Array:
    """``float32[steps + 1]``: the query metric along ``steps`` SGD steps on the support set."""
    return rule_adaptation_curve(loss_fn, metric_fn, SGD(lr), (), params, support, query, steps)
