"""Network backbones shared by every learner, as plain pytrees of arrays and pure functions.

* **Conv-4** (Vinyals et al. 2016; Snell et al. 2017; Finn et al. 2017): ``depth`` blocks of
  [conv 3x3 (SAME, no bias) -> batch norm -> ReLU -> max-pool 2x2 (VALID)], NHWC images,
  HWIO kernels. ``channels`` is configurable (16/32/64). 28x28 inputs give 64 features
  after four blocks (28 -> 14 -> 7 -> 3 -> 1); 84x84 give 64 * 5 * 5.
  ``pool="stride"``: Finn et al. 2017's Omniglot variant (section 5.2, "strided convolutions
  were used instead of max-pooling"): stride-2 SAME convolutions, no pooling, and the last
  block's output averaged over space (their reference code), so 64 features for any input
  size; 28x28 -> 14 -> 7 -> 4 -> 2, ~3.7x fewer multiply-adds than max-pooling at 28x28.
* **MLP** for regression (Finn et al. 2017, section 5.1): 1-40-40-1 with ReLU by default.

Batch norm (a design decision every learner shares): statistics are always the *batch*
statistics of the images in the current forward pass, in meta-training and at evaluation
alike, with learnable scale/offset and **no running averages** -- Finn et al.'s reference
MAML code behaves this way ("transductive" batch norm). Consequences: predictions on a
query set depend on the whole query batch, and ProtoNet embeds support and query images
in one forward pass per episode. No mutable collections, so a model is a pure function
``apply(params, x)`` and its parameters a dict pytree that MAML can differentiate through.

Parameters are plain dicts (not flax modules): MAML's inner loop updates them with
``tree_map`` and second-order gradients flow through them without any adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, Any]
BN_EPS = 1e-5
_DN = ("NHWC", "HWIO", "NHWC")
POOLS = ("max", "stride")


class Model(NamedTuple):
    """A backbone: ``init(key) -> params``, ``apply(params, x) -> outputs``."""

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]


# -- Conv-4 -----------------------------------------------------------------------------


def _check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise ValueError(f"unknown Conv-4 pooling {pool!r}; choose one of {', '.join(POOLS)}")


def conv4_feature_size(
    image_shape: tuple[int, ...], channels: int = 64, depth: int = 4, pool: str = "max"
) -> int:
    """Length of the flattened Conv-4 embedding of one ``(H, W, C)`` image."""
    _check_pool(pool)
    if pool == "stride":
        return channels
    h, w = int(image_shape[0]), int(image_shape[1])
    for _ in range(depth):
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"image {image_shape} is too small for {depth} conv blocks with 2x2 pooling")
    return channels * h * w


def conv4_init(
    key: jax.Array,
    image_shape: tuple[int, ...],
    *,
    channels: int = 64,
    depth: int = 4,
    n_out: int | None = None,
    dtype: Any = jnp.float32,
    pool: str = "max",
) -> Params:
    """Conv-4 parameters: ``{"blocks": [{w[3,3,Cin,Cout], gamma[Cout], beta[Cout]}...], "head"?}``.

    Conv kernels use He-normal init (fan-in, ReLU); ``gamma = 1``, ``beta = 0``. With
    ``n_out`` a linear head ``{w[F, n_out], b[n_out]}`` (Glorot-uniform, zero bias) is added.
    """
    keys = jax.random.split(key, depth + 1)
    c_in = int(image_shape[-1])
    blocks = []
    for i in range(depth):
        w = jax.nn.initializers.he_normal()(keys[i], (3, 3, c_in, channels), dtype)
        blocks.append({"w": w, "gamma": jnp.ones((channels,), dtype), "beta": jnp.zeros((channels,), dtype)})
        c_in = channels
    params: Params = {"blocks": blocks}
    if n_out is not None:
        f = conv4_feature_size(image_shape, channels, depth, pool)
        params["head"] = {
            "w": jax.nn.initializers.glorot_uniform()(keys[depth], (f, n_out), dtype),
            "b": jnp.zeros((n_out,), dtype),
        }
    return params


def batch_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, groups: int = 1) -> jax.Array:
    """Batch norm with the statistics of ``x`` over all axes but the last (channels).

    ``groups > 1``: the leading axis holds ``groups`` equal, independent batches (episodes
    folded into one batch) and each is normalised with its own statistics.
    """
    shape = x.shape
    if groups > 1:
        x = x.reshape(groups, shape[0] // groups, *shape[1:])
    axes = tuple(range(1 if groups > 1 else 0, x.ndim - 1))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return ((x - mean) * (gamma * jax.lax.rsqrt(var + BN_EPS)) + beta).reshape(shape)


def _grouped(x: jax.Array, groups: int) -> tuple[jax.Array, tuple[int, ...]]:
    """``x[B, ...]`` as ``[groups, B / groups, ...]`` and the axes its statistics reduce over."""
    xg = x.reshape(groups, x.shape[0] // groups, *x.shape[1:])
    return xg, tuple(range(1, xg.ndim - 1))


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def bn_relu(x: jax.Array, gamma: jax.Array, beta: jax.Array, groups: int = 1) -> jax.Array:
    """``relu(batch_norm(x, gamma, beta, groups))`` with a hand-written VJP.

    Same values as the composition. The VJP (Ioffe & Szegedy 2015, section 3, with
    ``z = relu`` mask applied first): with ``dz = dy * [y > 0]`` and ``x_hat = (x - mu) / sigma``
    over the ``n`` values of a channel,
    ``d_beta = sum dz``, ``d_gamma = sum dz * x_hat``,
    ``dx = gamma / (n sigma) * (n dz - d_beta - x_hat d_gamma)``:
    two channel reductions and one elementwise pass, against the chain of
    broadcasts and reductions autodiff derives from the forward pass. It is itself plain jax,
    so second-order gradients (MAML) differentiate through it; forward-mode (``jax.jvp``)
    is not defined for a ``custom_vjp``: use ``relu(batch_norm(...))`` there.
    """
    return jax.nn.relu(batch_norm(x, gamma, beta, groups))


def _bn_relu_fwd(
    x: jax.Array, gamma: jax.Array, beta: jax.Array, groups: int
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    xg, axes = _grouped(x, groups)
    mean = jnp.mean(xg, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=axes, keepdims=True)
    inv = jax.lax.rsqrt(var + BN_EPS)
    y = jax.nn.relu((xg - mean) * (gamma * inv) + beta)
    return y.reshape(x.shape), (xg, mean, inv, y > 0, gamma)


def _bn_relu_bwd(groups: int, res: tuple[jax.Array, ...], dy: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    xg, mean, inv, mask, gamma = res
    axes = tuple(range(1, xg.ndim - 1))
    n = math.prod(xg.shape[a] for a in axes)
    dz = jnp.where(mask, dy.reshape(xg.shape), 0.0)
    x_hat = (xg - mean) * inv
    d_beta = jnp.sum(dz, axis=axes, keepdims=True)
    d_gamma = jnp.sum(dz * x_hat, axis=axes, keepdims=True)
    dx = (gamma * inv / n) * (n * dz - d_beta - x_hat * d_gamma)
    chan = xg.shape[-1]
    return dx.reshape(dy.shape), d_gamma.reshape(-1, chan).sum(0), d_beta.reshape(-1, chan).sum(0)


bn_relu.defvjp(_bn_relu_fwd, _bn_relu_bwd)


def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, VALID (odd sizes are floored), NHWC.

    The elementwise maximum of the four strided slices of the cropped input: same values
    as ``lax.reduce_window``, but the gradient is selects and pads instead of XLA's
    ``select_and_scatter`` (~1.7x faster fwd+bwd at 28x28x64 on this CPU; see
    ``benchmarks/bench_learners.py``). Reshape-based forms
    (``reshape(B, H/2, 2, W/2, 2, C).max(...)``) are faster still, but with jax 0.10.2 on
    CPU they gave wrong values under ``jit`` inside vmapped MAML / ProtoNet (eager was
    right), so they are not used; ``tests/baselines/test_backbones.py`` and
    ``test_maml.py`` compare jitted against eager results to catch this class of bug.
    """
    b, h, w, c = x.shape
    x = x[:, : 2 * (h // 2), : 2 * (w // 2)]
    return jnp.maximum(
        jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]), jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2])
    )


def max_pool2_reduce_window(x: jax.Array) -> jax.Array:
    """Reference 2x2/2 VALID max pooling with ``lax.reduce_window`` (slow gradient on CPU)."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


#: Inputs with at most this many channels are convolved by im2col + matmul (see ``conv3x3``).
IM2COL_MAX_CHANNELS = 4
#: Stride-2 convolutions are convolved by im2col + matmul on the CPU backend (see ``conv3x3``).
IM2COL_STRIDED_ON_CPU = True


def _same_pad(size: int, stride: int) -> tuple[int, int, int]:
    """``(out, pad_lo, pad_hi)`` of a 3-wide SAME window along an axis (XLA's convention)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + 3 - size, 0)
    return out, total // 2, total - total // 2


def _uses_im2col(channels: int, stride: int) -> bool:
    """Whether ``conv3x3`` convolves ``channels`` input channels at ``stride`` by im2col (its docstring)."""
    if channels <= IM2COL_MAX_CHANNELS:
        return True
    return stride > 1 and IM2COL_STRIDED_ON_CPU and jax.default_backend() == "cpu"


#: Stride-1 many-channel convolutions over at least this many output rows (images x pixels)
#: take their weight gradient from ``conv3x3_chunked_dw`` on the CPU backend; ``None``: never.
CHUNKED_DW_MIN_ROWS: int | None = 10_000
#: Output rows per chunk of ``conv3x3_chunked_dw`` (about 0.5 MB of a 64-channel input).
CHUNKED_DW_TARGET_ROWS = 2048


def _lax_conv(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=_DN)


def conv3x3_weight_grad(x: jax.Array, dy: jax.Array, chunk: int) -> jax.Array:
    """Weight gradient ``float[3, 3, C_in, C_out]`` of a 3x3 SAME stride-1 convolution.

    ``dW[i, j] = sum_{b, p} x_pad[b, p + (i, j)]^T dy[b, p]``: nine shifted-slice matmuls,
    summed over chunks of ``chunk`` images in a ``lax.scan`` (the batch zero-padded to a
    multiple of ``chunk``; zero images add nothing). Each chunk's slices stay in cache; XLA's
    own weight-gradient convolution on the whole batch does not (for 100 images 14x14x64 it
    runs at about a quarter of the forward pass's FLOP rate on this CPU;
    ``benchmarks/bench_conv_grad.py`` and docs/performance.md).
    """
    b, h, wd, c = x.shape
    n = -(-b // chunk)
    pad = n * chunk - b
    if pad:
        x = jnp.pad(x, ((0, pad), (0, 0), (0, 0), (0, 0)))
        dy = jnp.pad(dy, ((0, pad), (0, 0), (0, 0), (0, 0)))

    def one(xc: jax.Array, dc: jax.Array) -> jax.Array:
        xp = jnp.pad(xc, ((0, 0), (1, 1), (1, 1), (0, 0)))
        d = dc.reshape(-1, dc.shape[-1])
        return jnp.stack(
            [xp[:, i : i + h, j : j + wd, :].reshape(-1, c).T @ d for i in range(3) for j in range(3)]
        ).reshape(3, 3, c, -1)

    if n == 1:
        return one(x, dy)
    xs = (x.reshape(n, chunk, h, wd, c), dy.reshape(n, chunk, h, wd, dy.shape[-1]))
    zero = jnp.zeros((3, 3, c, dy.shape[-1]), jnp.result_type(x, dy))
    return jax.lax.scan(lambda acc, a: (acc + one(*a), None), zero, xs)[0]


def _dw_chunk(b: int, h: int, w: int, c: int = 64) -> int | None:
    """Images per chunk for ``conv3x3_chunked_dw``, or ``None`` for XLA's own weight gradient.

    The target is ``CHUNKED_DW_TARGET_ROWS * (64 / c)^2`` output rows a chunk (measured best:
    10 images at 14x14x64, 4-8 at 42x42x32, 10-40 at 21x21x32), rounded to the nearest
    divisor of ``b`` when one lies within a factor 2 (zero-padding the batch costs a copy).
    """
    if CHUNKED_DW_MIN_ROWS is None or b * h * w < CHUNKED_DW_MIN_ROWS or jax.default_backend() != "cpu":
        return None
    target = max(1.0, min(float(b), CHUNKED_DW_TARGET_ROWS * (64 / c) ** 2 / (h * w)))
    nearest = min((d for d in range(1, b + 1) if b % d == 0), key=lambda d: abs(math.log(d / target)))
    return nearest if abs(math.log(nearest / target)) <= math.log(2) else round(target)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3_chunked_dw(x: jax.Array, w: jax.Array, chunk: int) -> jax.Array:
    """``lax.conv_general_dilated`` 3x3 SAME stride 1, whose weight gradient is ``conv3x3_weight_grad``.

    The input gradient is XLA's (the transposed convolution, as fast as the forward pass
    here). Second-order gradients differentiate through both; ``jax.jvp`` is not defined.
    """
    return _lax_conv(x, w)


def _conv_fwd(x: jax.Array, w: jax.Array, chunk: int) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _lax_conv(x, w), (x, w)


def _conv_bwd(chunk: int, res: tuple[jax.Array, jax.Array], dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = res
    (dx,) = jax.linear_transpose(lambda u: _lax_conv(u, w), x)(dy)
    return dx, conv3x3_weight_grad(x, dy, chunk).astype(w.dtype)


conv3x3_chunked_dw.defvjp(_conv_fwd, _conv_bwd)


def conv3x3(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    """3x3 SAME convolution with stride ``stride``, NHWC x HWIO -> NHWC.

    im2col (nine shifted slices, concatenated) + one matmul, whose gradients are a matmul
    plus pads and adds, in two cases: few input channels (the first Conv-4 block on grey
    images; XLA's CPU convolution weight gradient for ``C_in = 1`` was measured ~7x slower),
    and stride-2 convolutions on the CPU backend, where the patches are only 9/4 the size
    of the input: second-order MAML on Finn et al.'s strided Omniglot network (5w1s,
    meta-batch 32) went from 36.9 to 47.1 tasks/s, first order unchanged within the noise
    (``benchmarks/bench_learners.py``, 2026-11-30 entry). Stride-1 convolutions with many
    channels (9x patches; measured slower for ProtoNet) and every convolution on
    accelerators (not measured there) use ``lax.conv_general_dilated``; on the CPU backend,
    those over at least ``CHUNKED_DW_MIN_ROWS`` output rows take their weight gradient in
    cache-sized chunks (``conv3x3_chunked_dw``; 2.4x faster for ProtoNet's 100 images
    14x14x64). Below that size XLA's weight gradient is as fast or faster.
    """
    c = x.shape[-1]
    if not _uses_im2col(c, stride):
        chunk = _dw_chunk(*x.shape) if stride == 1 else None
        if chunk is not None:
            return conv3x3_chunked_dw(x, w, chunk)
        return _lax_conv(x, w, stride)
    b, h, wd, _ = x.shape
    oh, h_lo, h_hi = _same_pad(h, stride)
    ow, w_lo, w_hi = _same_pad(wd, stride)
    xp = jnp.pad(x, ((0, 0), (h_lo, h_hi), (w_lo, w_hi), (0, 0)))
    span_h, span_w = stride * (oh - 1) + 1, stride * (ow - 1) + 1
    cols = jnp.concatenate(
        [xp[:, i : i + span_h : stride, j : j + span_w : stride, :] for i in range(3) for j in range(3)], axis=-1
    )
    return (cols.reshape(-1, 9 * c) @ w.reshape(9 * c, -1)).reshape(b, oh, ow, -1)


def conv4_embed(params: Params, x: jax.Array, groups: int = 1, pool: str = "max") -> jax.Array:
    """Embeddings ``float[B, F]`` of images ``float[B, H, W, C]`` (NHWC); batch-statistics BN.

    ``groups``: number of independent equal-sized batches folded into ``B`` (see ``batch_norm``).
    ``pool``: ``"max"`` (2x2 max-pooling, flattened) or ``"stride"`` (stride-2 convolutions,
    spatial mean; Finn et al.'s Omniglot network).
    """
    _check_pool(pool)
    stride = 2 if pool == "stride" else 1
    h = x
    for blk in params["blocks"]:
        h = bn_relu(conv3x3(h, blk["w"], stride), blk["gamma"], blk["beta"], groups)
        if pool == "max":
            h = max_pool2(h)
    if pool == "stride":
        return jnp.mean(h, axis=(1, 2))
    return h.reshape(h.shape[0], -1)


def conv4_apply(params: Params, x: jax.Array, pool: str = "max") -> jax.Array:
    """Logits ``float[B, n_out]`` of images ``float[B, H, W, C]`` (needs the ``head``)."""
    f = conv4_embed(params, x, pool=pool)
    return f @ params["head"]["w"] + params["head"]["b"]


# -- MLP ----------------------------------------------------------------------------------


def mlp_init(
    key: jax.Array, sizes: tuple[int, ...] = (1, 40, 40, 1), dtype: Any = jnp.float32
) -> Params:
    """MLP parameters ``{"layers": [{w[in, out], b[out]}, ...]}``.

    Weights ~ truncated normal with std 0.01, zero biases, as in Finn et al.'s reference
    sinusoid code (He init on inputs in [-5, 5] starts with a ~600 MSE and makes SGD
    fine-tuning at lr 0.01 diverge).
    """
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:])):
        w = 0.01 * jax.random.truncated_normal(k, -2.0, 2.0, (a, b), dtype)
        layers.append({"w": w, "b": jnp.zeros((b,), dtype)})
    return {"layers": layers}


def mlp_apply(params: Params, x: jax.Array) -> jax.Array:
    """``float[B, D_in] -> float[B, D_out]``, ReLU between layers, linear output."""
    h = x
    layers = params["layers"]
    for i, layer in enumerate(layers):
        h = h @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            h = jax.nn.relu(h)
    return h


# -- choosing a backbone for an env --------------------------------------------------------


def model_for(
    env: Any,
    *,
    channels: int = 64,
    depth: int = 4,
    hidden: tuple[int, ...] = (40, 40),
    dtype: Any = jnp.float32,
    pool: str = "max",
) -> Model:
    """Conv-4 (``pool``: see ``conv4_embed``) with an ``env.ways`` head for classification, an MLP for regression."""
    shapes = env.task_shapes("train")
    x_shape = shapes.support[0].shape
    if env.spec.kind == "classification":
        image_shape = tuple(x_shape[1:])
        n_out = int(env.ways)
        return Model(
            lambda k: conv4_init(k, image_shape, channels=channels, depth=depth, n_out=n_out, dtype=dtype, pool=pool),
            lambda p, x: conv4_apply(p, x, pool=pool),
        )
    if env.spec.kind == "regression":
        sizes = (int(x_shape[-1]), *hidden, int(shapes.support[1].shape[-1]))
        return Model(lambda k: mlp_init(k, sizes, dtype), mlp_apply)
    raise ValueError(f"no supervised backbone for kind {env.spec.kind!r}")


def supervised_loss(kind: str, outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy (classification, integer labels) or mean squared error."""
    if kind == "classification":
        logp = jax.nn.log_softmax(outputs, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=-1))
    return jnp.mean(jnp.square(outputs - y))
