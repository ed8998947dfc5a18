"""TURTLE's update: a stateless feed-forward meta-network (seed 003 §3.4.3, eq. 3.7).

    theta^(t+1) = theta^(t) + alpha (.) g_phi(I^(t))                         (eq. 3.7)

``g_phi`` is a fully connected network applied to every base-learner coordinate (one
network for all parameters, as seed 003's default, not one per layer); ``I^(t)`` are the
coordinate's inputs (``inputs``: the raw gradient, §3.5.1's choice, or gradient and loss,
or Ravi & Larochelle's preprocessed pair); ``hidden`` ReLU layers (§3.5.1: 5 layers of 20
nodes) and a linear output of one number. ``alpha`` is a learned learning rate per
parameter, drawn ``U[0, 1)`` as seed 003's code does (``learn_alpha=False`` with
``alpha_init=1`` is the fixed vector of ones of §3.5.1). Layers start as PyTorch's
``nn.Linear`` (weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), which seed 003's
code uses. The sign is eq. 3.7's: the network learns the descent direction itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from metabench.baselines.update_rules.base import INPUTS, Params, UpdateRule, rule_inputs

tmap = jax.tree_util.tree_map


class TurtleParams(NamedTuple):
    layers: list[dict[str, jax.Array]]  # [{w: float[in, out], b: float[out]}], last out = 1
    alpha: Any  # pytree like the base learner's params: per-parameter learning rates


@dataclasses.dataclass(frozen=True)
class Turtle(UpdateRule):
    """Eq. 3.7 with ``g_phi`` = MLP(``INPUTS[inputs]`` -> ``hidden`` ... -> 1)."""

    inputs: str = "grad"
    hidden: tuple[int, ...] = (20,) * 5
    alpha_init: float | None = None  # None: U[0, 1) per parameter (seed 003's code)
    learn_alpha: bool = True

    @property
    def uses_loss(self) -> bool:  # type: ignore[override]
        return self.inputs != "grad"

    def init(self, key: jax.Array, params: Params) -> TurtleParams:
        sizes = (INPUTS[self.inputs], *self.hidden, 1)
        keys = jax.random.split(key, len(sizes))
        layers = []
        for k, (a, b) in zip(keys[1:], zip(sizes[:-1], sizes[1:])):
            kw, kb = jax.random.split(k)
            bound = 1.0 / float(a) ** 0.5
            layers.append({"w": jax.random.uniform(kw, (a, b), jnp.float32, -bound, bound),
                           "b": jax.random.uniform(kb, (b,), jnp.float32, -bound, bound)})
        leaves, treedef = jax.tree_util.tree_flatten(params)
        if self.alpha_init is None:
            ks = jax.random.split(keys[0], max(len(leaves), 1))
            alpha = [jax.random.uniform(kk, p.shape, p.dtype) for kk, p in zip(ks, leaves)]
        else:
            alpha = [jnp.full(p.shape, self.alpha_init, p.dtype) for p in leaves]
        return TurtleParams(layers, jax.tree_util.tree_unflatten(treedef, alpha))

    def network(self, layers: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
        """``g_phi``: ``float[..., d] -> float[...]`` (ReLU hidden layers, linear output)."""
        for j, layer in enumerate(layers):
            x = x @ layer["w"] + layer["b"]
            if j < len(layers) - 1:
                x = jax.nn.relu(x)
        return x[..., 0]

    def activation_floats_per_param(self) -> int:
        """Inputs, and each hidden layer's pre- and post-ReLU values."""
        return INPUTS[self.inputs] + 2 * sum(self.hidden)

    def update(
        self, rp: TurtleParams, state: Any, params: Params, grads: Params, loss: jax.Array | None
    ) -> tuple[Params, Any]:
        """Eq. 3.7 on all coordinates at once (leaves flattened into one vector)."""
        alpha = rp.alpha if self.learn_alpha else jax.lax.stop_gradient(rp.alpha)
        theta, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(grads)
        a, _ = ravel_pytree(alpha)
        return unravel(theta + a * self.network(rp.layers, rule_inputs(self.inputs, g, loss))), state


def gradient_passthrough_params(rule: Turtle, lr: float, params: Params) -> TurtleParams:
    """A ``g_phi`` that outputs ``-grad`` exactly, and ``alpha = lr``: eq. 3.7 is then MAML's eq. 3.1.

    ``-g = relu(-g) - relu(g)``: the first hidden layer holds ``relu(g)`` and ``relu(-g)`` in
    two units, later hidden layers copy them (identity on non-negative values), the output
    subtracts. Needs the gradient as the first input and hidden layers of width >= 2.
    """
    if min(rule.hidden, default=0) < 2:
        raise ValueError("the pass-through construction needs hidden layers of width >= 2")
    sizes = (INPUTS[rule.inputs], *rule.hidden, 1)
    layers = []
    for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = jnp.zeros((a, b), jnp.float32)
        if j == 0:
            w = w.at[0, 0].set(1.0).at[0, 1].set(-1.0)
        elif j < len(sizes) - 2:
            w = w.at[0, 0].set(1.0).at[1, 1].set(1.0)
        else:
            w = w.at[0, 0].set(-1.0).at[1, 0].set(1.0)
        layers.append({"w": w, "b": jnp.zeros((b,), jnp.float32)})
    return TurtleParams(layers, tmap(lambda p: jnp.full(p.shape, lr, p.dtype), params))
