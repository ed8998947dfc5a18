"""The TRPO step of Finn et al.'s MAML for RL (Schulman et al. 2015, appendix C; rllab's
``ConjugateGradientOptimizer``, which their ``MAMLTRPO`` uses for the meta-update).

Given a surrogate loss ``L(theta)`` to minimise and a mean KL divergence ``KL(theta)``
between the sampling policies and the policies at ``theta`` (zero at ``theta_0``)::

    g  = grad L(theta_0),  H v = grad (grad KL(theta_0) . v) + damping * v   (Fisher-vector product)
    x  = H^-1 g by ``cg_iters`` conjugate-gradient iterations
    s  = sqrt(2 max_kl / (x . H x)) * x                                     (the trust-region step)
    theta = theta_0 - ratio^j s  for the first j = 0, 1, ..., max_backtracks - 1 with
            L(theta) < L(theta_0) and KL(theta) <= max_kl; theta_0 if no j qualifies.

``fvp`` may be given instead of the Hessian of ``KL`` (e.g. a Gauss-Newton product
``J^T M J v`` through the policy outputs, which at ``theta_0`` -- where KL and its
gradient vanish -- equals that Hessian and avoids a third derivative through MAML's
inner step). ``damping * v`` is added either way.

``finite_difference_hvp`` is the product Finn et al.'s code uses (their copy of rllab's
``ConjugateGradientOptimizer`` defaults to ``FiniteDifferenceHvp``): ``(grad KL(theta_0 +
eps v) - grad KL(theta_0 - eps v)) / (2 eps)`` with ``eps = 1e-8 / ||theta_0||``, in float32.
At that ``eps`` most parameters do not move at all (``eps v_j`` is below half their float32
spacing unless ``|v|`` is large): for ``v`` the size of a gradient the product is
quantisation noise or exactly 0, for the large ``x`` conjugate gradient ends with it
approximates ``H x`` (``benchmarks/diagnose_trpo_hvp.py`` measures both). Where it is 0 at the
gradient (a trained policy, no parameter at exactly 0), conjugate gradient stops after one
iteration at ``x = g / damping``, so the step is the *plain gradient* direction scaled to
``x . H x = 2 max_kl``, not the natural gradient. ``fresh_curvature=True`` reproduces how
rllab then scales the step: ``x . H x`` by a new product (not from the CG residual) and
step size 1 where ``sqrt(2 max_kl / (x . H x))`` is NaN (a negative curvature estimate).

rllab's defaults: ``cg_iters=10``, ``damping=1e-5`` (its ``reg_coeff``), backtrack ratio 0.8,
15 backtracks; Finn et al.'s meta step size ``max_kl=0.01``. Everything is a pure
function of flat vectors and jits as one XLA computation (``lax.fori_loop`` /
``lax.while_loop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Flat = jax.Array


class TRPOResult(NamedTuple):
    """theta: float32[D] the new parameters; loss_before / loss_after / kl: float32[];
    accepted: bool[] whether the line search took a step; backtracks: int32[] steps tried - 1."""

    theta: Flat
    loss_before: jax.Array
    loss_after: jax.Array
    kl: jax.Array
    accepted: jax.Array
    backtracks: jax.Array


def conjugate_gradient(
    matvec: Callable[[Flat], Flat], b: Flat, iters: int, tol: float = 1e-10, early_exit: bool = False
) -> tuple[Flat, Flat]:
    """``(x, r)``: ``x ~ A^-1 b`` for symmetric positive-definite ``A`` given as ``matvec``
    (rllab's ``cg``, from ``x = 0``) and its residual ``r = b - A x``.

    rllab stops once ``r . r < tol``. ``early_exit=False`` runs all ``iters`` iterations as a
    ``fori_loop`` whose iterations after that point are no-ops (the products are still
    computed); ``True`` stops there (a ``while_loop`` over the same iterations: the same
    result), which saves the products where CG ends early (``finite_difference_hvp``: after one).
    """

    def body(_: int, carry: tuple[Flat, Flat, Flat, jax.Array]) -> tuple[Flat, Flat, Flat, jax.Array]:
        x, r, p, rr = carry
        active = rr > tol  # rllab stops once the residual is tiny; here the remaining iterations are no-ops
        ap = matvec(p)
        pap = p @ ap  # may be negative for a product that is not positive definite (rllab divides anyway)
        alpha = jnp.where(active, rr / jnp.where(pap == 0.0, 1e-30, pap), 0.0)
        x = x + alpha * p
        r_new = r - alpha * ap
        rr_new = r_new @ r_new
        beta = jnp.where(active, rr_new / jnp.maximum(rr, 1e-30), 0.0)
        p = jnp.where(active, r_new + beta * p, p)
        return x, jnp.where(active, r_new, r), p, jnp.where(active, rr_new, rr)

    start = (jnp.zeros_like(b), b, b, b @ b)
    if not early_exit:
        x, r, _, _ = jax.lax.fori_loop(0, iters, body, start)
        return x, r
    # the same iterations, stopping where the fixed loop's would turn into no-ops
    _, x, r, _, _ = jax.lax.while_loop(lambda c: (c[0] < iters) & (c[-1] > tol),
                                       lambda c: (c[0] + 1, *body(c[0], c[1:])),
                                       (jnp.zeros((), jnp.int32), *start))
    return x, r


def finite_difference_eps(theta0: Flat, base_eps: float = 1e-8) -> jax.Array:
    """rllab's finite-difference step ``base_eps / (||theta0|| + 1e-8)`` in ``theta0``'s dtype."""
    return (base_eps / (jnp.linalg.norm(theta0) + 1e-8)).astype(theta0.dtype)


def finite_difference_hvp(grad_kl: Callable[[Flat], Flat], theta0: Flat, base_eps: float = 1e-8) -> Callable[[Flat], Flat]:
    """rllab's ``FiniteDifferenceHvp`` (symmetric): ``v -> (grad_kl(theta0 + eps v) -
    grad_kl(theta0 - eps v)) / (2 eps)``, ``eps = base_eps / (||theta0|| + 1e-8)``, all in
    ``theta0``'s dtype (float32: module docstring)."""
    dtype = theta0.dtype
    eps = finite_difference_eps(theta0, base_eps)

    def hvp(v: Flat) -> Flat:
        v = v.astype(dtype)
        return (grad_kl(theta0 + eps * v) - grad_kl(theta0 - eps * v)) / (2 * eps)

    return hvp


def trpo_step(
    loss: Callable[[Flat], jax.Array],
    kl: Callable[[Flat], jax.Array],
    theta0: Flat,
    *,
    fvp: Callable[[Flat], Flat] | None = None,
    max_kl: float = 0.01,
    cg_iters: int = 10,
    damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    fresh_curvature: bool = False,
) -> TRPOResult:
    """One constrained step from ``theta0: float32[D]`` (module docstring; ``fresh_curvature``
    for products that are not linear, as ``finite_difference_hvp``: also stops CG as rllab does)."""
    loss0, g = jax.value_and_grad(loss)(theta0)
    if fvp is None:
        _, hvp = jax.linearize(jax.grad(kl), theta0)  # forward-over-reverse; primal computed once
    else:
        hvp = fvp

    def damped(v: Flat) -> Flat:
        return hvp(v) + damping * v

    x, r = conjugate_gradient(damped, g, cg_iters, early_exit=fresh_curvature)
    if fresh_curvature:  # rllab: a new product, and step size 1 where the root is NaN
        size = jnp.sqrt(2.0 * max_kl * (1.0 / (x @ damped(x) + 1e-8)))
        step = jnp.where(jnp.isnan(size), 1.0, size) * x
    else:
        shs = x @ (g - r)  # = x . H x, since r = g - H x (rllab multiplies once more; one product fewer to compile)
        step = jnp.sqrt(2.0 * max_kl / (shs + 1e-8)) * x

    def ok(l: jax.Array, k: jax.Array) -> jax.Array:
        return (l < loss0) & (k <= max_kl) & jnp.isfinite(l) & jnp.isfinite(k)

    def cond(carry: tuple[jax.Array, Flat, jax.Array, jax.Array]) -> jax.Array:
        j, _, l, k = carry
        return (j < 0) | ((j < max_backtracks - 1) & ~ok(l, k))

    def body(carry: tuple[jax.Array, Flat, jax.Array, jax.Array]) -> tuple[jax.Array, Flat, jax.Array, jax.Array]:
        j = carry[0] + 1
        theta = theta0 - backtrack_ratio ** j.astype(jnp.float32) * step
        return j, theta, loss(theta), kl(theta)

    start = (jnp.full((), -1, jnp.int32), theta0, loss0, jnp.zeros((), loss0.dtype))  # j = -1: nothing tried yet
    j, theta, l, k = jax.lax.while_loop(cond, body, start)
    accepted = ok(l, k)
    return TRPOResult(
        theta=jnp.where(accepted, theta, theta0),
        loss_before=loss0,
        loss_after=jnp.where(accepted, l, loss0),
        kl=jnp.where(accepted, k, 0.0),
        accepted=accepted,
        backtracks=j,
    )


__all__ = ["TRPOResult", "conjugate_gradient", "finite_difference_eps", "finite_difference_hvp", "trpo_step"]
