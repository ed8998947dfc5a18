"""Gradient-descent inner loops shared by MAML and the fine-tuning reference.

``loss_fn(params, x, y) -> scalar``. Steps are ``theta' = theta - alpha * grad`` (eq. 3.1 of
the DMAML thesis, seed 002). With ``first_order`` the inner gradient is wrapped in
``stop_gradient``, so differentiating through the loop gives the first-order MAML
meta-gradient (eq. 3.7: the Hessian term is replaced by the identity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


def sgd_step(loss_fn: LossFn, params: Any, data: tuple[jax.Array, jax.Array], lr: float, first_order: bool) -> Any:
    """One inner step on ``data = (x, y)``."""
    g = jax.grad(loss_fn)(params, *data)
    if first_order:
        g = jax.lax.stop_gradient(g)
    return jax.tree_util.tree_map(lambda p, gi: p - lr * gi, params, g)


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
    """``steps`` inner steps; a Python-unrolled loop, or ``lax.scan`` when ``scan``."""
    if steps == 0:
        return params
    if scan:
        body = lambda p, _: (sgd_step(loss_fn, p, data, lr, first_order), None)  # noqa: E731
        return jax.lax.scan(body, params, None, length=steps)[0]
    for _ in range(steps):
        params = sgd_step(loss_fn, params, data, lr, first_order)
    return params


def adaptation_curve(
    loss_fn: LossFn,
    metric_fn: Callable[[Any, jax.Array, jax.Array], jax.Array],
    params: Any,
    support: tuple[jax.Array, jax.Array],
    query: tuple[jax.Array, jax.Array],
    lr: float,
    steps: int,
) -> jax.Array:
    """``float32[steps + 1]``: ``metric_fn`` on the query set after 0, 1, ..., ``steps`` steps."""
    if steps == 0:
        return metric_fn(params, *query).astype(jnp.float32)[None]

    def body(p: Any, _: Any) -> tuple[Any, jax.Array]:
        m = metric_fn(p, *query)
        return sgd_step(loss_fn, p, support, lr, True), m

    p, ms = jax.lax.scan(body, params, None, length=steps)
    return jnp.concatenate([ms, metric_fn(p, *query)[None]]).astype(jnp.float32)
