"""The meta-learner LSTM update (Ravi & Larochelle 2017; seed 003 §3.3.2, eq. 3.3).

A two-layer coordinate-wise LSTM shared by every base-learner parameter:

1. a standard LSTM cell (``hidden`` units) reads the per-coordinate inputs ``x_t``
   (``inputs="proc"``: the preprocessed loss and gradient, 4 numbers, as Ravi & Larochelle;
   ``"grad"`` the raw gradient, seed 003's enhanced variant) and gives ``h_t``;
2. the meta-cell whose cell state *is* the parameter (eq. 3.3):

       f_t = W_f . [h_t, theta_{t-1}, f_{t-1}] + b_f          (forget gate, pre-sigmoid)
       i_t = W_i . [h_t, theta_{t-1}, i_{t-1}] + b_i          (input gate = learning rate)
       theta_t = sigmoid(f_t) * theta_{t-1} - sigmoid(i_t) * grad_t

Details chosen as the original code does (the Lua code's PyTorch port, which seed 003's
own implementation also follows): the previous gates fed back are the *pre-sigmoid*
values; all weights start ``U(-0.01, 0.01)``, ``b_f ~ U(4, 6)`` (forget gate near 1) and
``b_i ~ U(-5, -4)`` (learning rate near 0.01); gate states start at 0. The cell's initial
state ``c^(0) = theta`` is the base learner's learned initialisation, which the learner
owns as its ``theta``, so this rule keeps no copy of the parameters: its state is
``(h, c)`` of the first layer and the two gates, ``2 * hidden + 2`` floats per parameter.

Theorem 1 of seed 003: with ``W_f = 0``, ``b_f`` large, ``W_i = 0`` and
``b_i = -ln((1 - alpha) / alpha)`` the update is ``theta - alpha * grad`` (MAML's
eq. 3.1); ``gradient_descent_params`` builds exactly that parameterisation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from metabench.baselines.update_rules.base import INPUTS, Params, UpdateRule, rule_inputs

class MetaLSTMParams(NamedTuple):
    """Meta-parameters shared by every coordinate."""

    wx: jax.Array  # float[d_in, 4H]: layer-1 input weights (gates i, f, g, o)
    wh: jax.Array  # float[H, 4H]: layer-1 recurrent weights
    b: jax.Array  # float[4H]
    w_f: jax.Array  # float[H + 2]: forget gate over [h, theta, f_prev]
    b_f: jax.Array  # float[]
    w_i: jax.Array  # float[H + 2]: input gate over [h, theta, i_prev]
    b_i: jax.Array  # float[]


class MetaLSTMState(NamedTuple):
    """Per-task state over the ``n`` base-learner parameters, flattened (``ravel_pytree`` order)."""

    h: jax.Array  # float[n, H]: layer-1 hidden state
    c: jax.Array  # float[n, H]: layer-1 cell state
    f: jax.Array  # float[n]: previous forget-gate pre-activation
    i: jax.Array  # float[n]: previous input-gate pre-activation


@dataclasses.dataclass(frozen=True)
class MetaLSTM(UpdateRule):
    """Eq. 3.3 applied to every coordinate; ``inputs`` in ``base.INPUTS``, ``hidden`` units.

    The coordinates of all parameter leaves are handled as one flat vector (one set of
    operations per step, whatever the number of leaves).
    """

    inputs: str = "proc"
    hidden: int = 20

    @property
    def uses_loss(self) -> bool:  # type: ignore[override]
        return self.inputs != "grad"

    def init(self, key: jax.Array, params: Params) -> MetaLSTMParams:
        d, h = INPUTS[self.inputs], self.hidden
        k = jax.random.split(key, 7)
        u = lambda kk, shape, lo=-0.01, hi=0.01: jax.random.uniform(kk, shape, jnp.float32, lo, hi)  # noqa: E731
        return MetaLSTMParams(
            wx=u(k[0], (d, 4 * h)), wh=u(k[1], (h, 4 * h)), b=u(k[2], (4 * h,)),
            w_f=u(k[3], (h + 2,)), b_f=u(k[4], (), 4.0, 6.0),
            w_i=u(k[5], (h + 2,)), b_i=u(k[6], (), -5.0, -4.0),
        )

    def init_state(self, rule_params: MetaLSTMParams, params: Params) -> MetaLSTMState:
        flat, _ = ravel_pytree(params)
        n = flat.shape[0]
        return MetaLSTMState(jnp.zeros((n, self.hidden), flat.dtype), jnp.zeros((n, self.hidden), flat.dtype),
                             jnp.zeros((n,), flat.dtype), jnp.zeros((n,), flat.dtype))

    def update(
        self, rp: MetaLSTMParams, state: MetaLSTMState, params: Params, grads: Params, loss: jax.Array | None
    ) -> tuple[Params, MetaLSTMState]:
        theta, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(grads)
        x = rule_inputs(self.inputs, g, loss)  # [n, d]
        z = x @ rp.wx + state.h @ rp.wh + rp.b  # layer 1: a standard LSTM cell, gates (i, f, g, o)
        zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(zf) * state.c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
        h = jax.nn.sigmoid(zo) * jnp.tanh(c)
        hw = self.hidden
        f = h @ rp.w_f[:hw] + theta * rp.w_f[hw] + state.f * rp.w_f[hw + 1] + rp.b_f  # eq. 3.3 forget gate
        i = h @ rp.w_i[:hw] + theta * rp.w_i[hw] + state.i * rp.w_i[hw + 1] + rp.b_i  # eq. 3.3 input gate
        theta = jax.nn.sigmoid(f) * theta - jax.nn.sigmoid(i) * g  # eq. 3.3 with c-bar = -grad
        return unravel(theta), MetaLSTMState(h, c, f, i)

    def state_floats_per_param(self) -> int:
        return 2 * self.hidden + 2

    def activation_floats_per_param(self) -> int:
        """Inputs, the 4 gate pre-activations, tanh(c), h, c and the two meta-gates."""
        return INPUTS[self.inputs] + 7 * self.hidden + 2


def gradient_descent_params(rule: MetaLSTM, alpha: float, key: jax.Array, b_f: float = 30.0) -> MetaLSTMParams:
    """Theorem 1 of seed 003: a parameterisation under which eq. 3.3 is ``theta - alpha * grad``.

    ``W_f = W_i = 0``, ``b_f`` large enough that ``sigmoid(b_f) == 1`` in float32 (30 gives
    ``1 - 9e-14``) and ``b_i = -ln((1 - alpha) / alpha)``; the first layer keeps its random
    weights (the gates no longer read it).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"Theorem 1 needs 0 < alpha < 1, got {alpha}")
    p = rule.init(key, None)
    return p._replace(
        w_f=jnp.zeros_like(p.w_f), b_f=jnp.asarray(b_f, jnp.float32),
        w_i=jnp.zeros_like(p.w_i), b_i=jnp.asarray(-math.log((1.0 - alpha) / alpha), jnp.float32),
    )
