"""The backbones as ``flax.linen`` modules: Conv-4 (both poolings), the MLP and ResNet-12.

Every module here is **pure**: batch norm uses the statistics of the current batch, no
running averages, no mutable collections (the shared decision of ``backbones``), so
``module.apply({"params": p}, x)`` is a function of ``p`` that MAML's inner loop can update
with ``tree_map`` and differentiate through twice. Each takes ``groups`` (number of
independent equal-sized batches folded into the leading axis, each normalised with its
own statistics; ProtoNet's ``episode_map="reshape"``).

``Conv4`` and ``MLP`` are the landed networks of ``backbones`` written as modules: the
same primitives (``conv3x3``, ``batch_norm``, ``max_pool2``) in the same order, so for the
same parameters they give the same outputs bit for bit (jitted or not). Parameters differ
only in layout (``conv4_to_flax`` / ``conv4_from_flax``, ``mlp_to_flax`` / ``mlp_from_flax``
convert), and ``landed_init(key, input_shape)`` draws exactly the landed initial parameters
from a key (``conv4_init`` / ``mlp_init``, converted). ``module.init`` (flax's own) draws from
the same distributions with flax's per-parameter keys, so other values.

``ResNet12``: the ResNet-12 of Lee et al. 2019 (MetaOptNet) / Oreshkin et al. 2018 that most
miniImageNet / CUB papers use: four residual blocks of widths ``channels`` (default
64-160-320-640), each [3 x (conv 3x3 -> BN -> LeakyReLU 0.1), the last without the
activation] + a 1x1 conv -> BN shortcut, added, LeakyReLU, 2x2 max-pool. ``global_pool=True``
(default) averages the last feature map over space (640 features, as most later papers);
``False`` flattens it (Lee et al.'s code: 640 x 5 x 5 at 84x84). DropBlock (Lee et al.) is not
implemented: it needs a dropout key and a train/eval switch, which the pure
``apply(params, x)`` contract has no place for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from metabench.baselines.backbones import (
    POOLS,
    Params,
    batch_norm,
    bn_relu,
    conv3x3,
    conv4_init,
    max_pool2,
    mlp_init,
)

__all__ = [
    "MLP",
    "Conv4",
    "ResNet12",
    "conv4_from_flax",
    "conv4_to_flax",
    "mlp_from_flax",
    "mlp_to_flax",
]


def _mlp_weight_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """``mlp_init``'s distribution: truncated normal on [-2, 2] times 0.01."""
    return 0.01 * jax.random.truncated_normal(key, -2.0, 2.0, tuple(shape), dtype)


# -- parameter layouts ------------------------------------------------------------------------


def conv4_to_flax(params: Params) -> Params:
    """Landed Conv-4 params ``{"blocks": [...], "head"?}`` -> ``Conv4``'s ``{"block0": ..., "head"?}``."""
    out: Params = {f"block{i}": dict(b) for i, b in enumerate(params["blocks"])}
    if "head" in params:
        out["head"] = dict(params["head"])
    return out


def conv4_from_flax(params: Params) -> Params:
    """``Conv4``'s params -> the landed layout (``backbones.conv4_embed`` / ``conv4_apply`` take it)."""
    n = sum(1 for k in params if k.startswith("block"))
    out: Params = {"blocks": [dict(params[f"block{i}"]) for i in range(n)]}
    if "head" in params:
        out["head"] = dict(params["head"])
    return out


def mlp_to_flax(params: Params) -> Params:
    """Landed MLP params ``{"layers": [...]}`` -> ``MLP``'s ``{"layer0": ..., ...}``."""
    return {f"layer{i}": dict(layer) for i, layer in enumerate(params["layers"])}


def mlp_from_flax(params: Params) -> Params:
    """``MLP``'s params -> the landed layout (``backbones.mlp_apply`` takes it)."""
    return {"layers": [dict(params[f"layer{i}"]) for i in range(len(params))]}


# -- layers ---------------------------------------------------------------------------------------


class Linear(nn.Module):
    """``x @ w + b`` with params ``w[F, n]``, ``b[n]`` (zero); ``w`` from ``kernel_init``."""

    features: int
    kernel_init: Any = nn.initializers.glorot_uniform()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("w", self.kernel_init, (x.shape[-1], self.features), self.dtype)
        b = self.param("b", nn.initializers.zeros, (self.features,), self.dtype)
        return x @ w + b


class ConvBN(nn.Module):
    """3x3 SAME convolution (no bias; ``backbones.conv3x3``) -> batch-statistics batch norm
    (-> ReLU with ``relu``, by ``backbones.bn_relu`` and its hand-written VJP).

    Params ``w[3, 3, C_in, C_out]`` (He normal, fan-in), ``gamma`` (1), ``beta`` (0).
    """

    channels: int
    stride: int = 1
    dtype: Any = jnp.float32
    relu: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
        w = self.param("w", nn.initializers.he_normal(), (3, 3, x.shape[-1], self.channels), self.dtype)
        gamma = self.param("gamma", nn.initializers.ones, (self.channels,), self.dtype)
        beta = self.param("beta", nn.initializers.zeros, (self.channels,), self.dtype)
        if self.relu:
            return bn_relu(conv3x3(x, w, self.stride), gamma, beta, groups)
        return batch_norm(conv3x3(x, w, self.stride), gamma, beta, groups)


# -- Conv-4 ----------------------------------------------------------------------------------------


class Conv4(nn.Module):
    """Conv-4 (``backbones``' module docstring): ``depth`` blocks of conv 3x3 -> BN -> ReLU -> pool.

    ``pool="max"``: 2x2 max-pooling, the output flattened; ``"stride"``: stride-2 convolutions
    and the last map averaged over space (Finn et al.'s Omniglot network). ``n_out``: a linear
    head of that many outputs (logits), else the embedding. Params ``{"block0": {w, gamma,
    beta}, ..., "head"?: {w, b}}``; ``landed_init`` gives ``backbones.conv4_init``'s values.
    """

    channels: int = 64
    depth: int = 4
    pool: str = "max"
    n_out: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
        if self.pool not in POOLS:
            raise ValueError(f"unknown Conv-4 pooling {self.pool!r}; choose one of {', '.join(POOLS)}")
        stride = 2 if self.pool == "stride" else 1
        h = x
        for i in range(self.depth):
            h = ConvBN(self.channels, stride, self.dtype, relu=True, name=f"block{i}")(h, groups)
            if self.pool == "max":
                h = max_pool2(h)
        h = jnp.mean(h, axis=(1, 2)) if self.pool == "stride" else h.reshape(h.shape[0], -1)
        if self.n_out is not None:
            h = Linear(self.n_out, dtype=self.dtype, name="head")(h)
        return h

    def landed_init(self, key: jax.Array, input_shape: Sequence[int]) -> Params:
        """Exactly ``backbones.conv4_init(key, ...)``'s parameters in this module's layout.

        ``input_shape``: one image's ``(H, W, C)`` (a leading batch axis is ignored).
        """
        image_shape = tuple(int(s) for s in input_shape[-3:])
        landed = conv4_init(key, image_shape, channels=self.channels, depth=self.depth, n_out=self.n_out,
                            dtype=self.dtype, pool=self.pool)
        return conv4_to_flax(landed)


# -- MLP ---------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """``backbones.mlp_apply`` as a module: Linear layers of output sizes ``sizes``, ReLU between them.

    ``MLP((40, 40, 1))`` is Finn et al.'s 1-40-40-1 on 1-d inputs (the input size comes from
    the data). Inputs with more than two axes are flattened first (``[B, ...] -> [B, -1]``).
    Weights ~ 0.01 x truncated normal, zero biases (``mlp_init``); params ``{"layer0": {w, b}, ...}``.
    """

    sizes: tuple[int, ...] = (40, 40, 1)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
        del groups  # no batch norm: every example is independent
        h = x.reshape(x.shape[0], -1) if x.ndim > 2 else x
        for i, size in enumerate(self.sizes):
            h = Linear(size, _mlp_weight_init, self.dtype, name=f"layer{i}")(h)
            if i < len(self.sizes) - 1:
                h = jax.nn.relu(h)
        return h

    def landed_init(self, key: jax.Array, input_shape: Sequence[int]) -> Params:
        """Exactly ``backbones.mlp_init(key, (D_in, *sizes))``'s parameters in this module's layout.

        ``input_shape``: one example's shape (flattened to ``D_in``; a leading batch axis is not expected).
        """
        d_in = 1
        for s in input_shape:
            d_in *= int(s)
        return mlp_to_flax(mlp_init(key, (d_in, *self.sizes), self.dtype))


# -- ResNet-12 -------------------------------------------------------------------------------------


def _leaky(x: jax.Array, slope: float) -> jax.Array:
    return jnp.where(x >= 0, x, slope * x)


class ResBlock(nn.Module):
    """One ResNet-12 block: 3 x ConvBN (LeakyReLU after the first two) + 1x1-conv/BN shortcut, add,
    LeakyReLU, 2x2 max-pool (Lee et al. 2019's ``BasicBlock``, without DropBlock)."""

    channels: int
    slope: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
        h = x
        for j in range(3):
            h = ConvBN(self.channels, 1, self.dtype, name=f"conv{j}")(h, groups)
            if j < 2:
                h = _leaky(h, self.slope)
        c_in = x.shape[-1]
        w = self.param("skip_w", nn.initializers.he_normal(), (1, 1, c_in, self.channels), self.dtype)
        gamma = self.param("skip_gamma", nn.initializers.ones, (self.channels,), self.dtype)
        beta = self.param("skip_beta", nn.initializers.zeros, (self.channels,), self.dtype)
        b, hh, ww, _ = x.shape
        skip = (x.reshape(-1, c_in) @ w.reshape(c_in, self.channels)).reshape(b, hh, ww, self.channels)
        h = _leaky(h + batch_norm(skip, gamma, beta, groups), self.slope)
        return max_pool2(h)


class ResNet12(nn.Module):
    """ResNet-12 (module docstring): ``len(channels)`` residual blocks, batch-statistics BN.

    ``channels``: block widths (Lee et al.: 64, 160, 320, 640). ``global_pool``: average the
    last map over space (True) or flatten it (False). ``n_out``: a linear head (logits), else
    the embedding. 84x84 inputs: 84 -> 42 -> 21 -> 10 -> 5; 28x28: 28 -> 14 -> 7 -> 3 -> 1.
    """

    channels: tuple[int, ...] = (64, 160, 320, 640)
    global_pool: bool = True
    n_out: int | None = None
    slope: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
        h = x
        for i, c in enumerate(self.channels):
            h = ResBlock(int(c), self.slope, self.dtype, name=f"block{i}")(h, groups)
        h = jnp.mean(h, axis=(1, 2)) if self.global_pool else h.reshape(h.shape[0], -1)
        if self.n_out is not None:
            h = Linear(self.n_out, dtype=self.dtype, name="head")(h)
        return h
