"""Conv-4 and MLP backbones: shapes, batch-statistics batch norm, grouped batch norm."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabench.baselines.backbones import (
    batch_norm,
    conv4_apply,
    conv4_embed,
    conv4_feature_size,
    conv4_init,
    mlp_apply,
    mlp_init,
)


@pytest.mark.parametrize("shape,channels,feat", [((28, 28, 1), 64, 64), ((84, 84, 3), 32, 32 * 25), ((28, 28, 1), 16, 16)])
def test_conv4_shapes(shape, channels, feat):
    assert conv4_feature_size(shape, channels) == feat
    params = conv4_init(jax.random.key(0), shape, channels=channels, n_out=5)
    assert params["blocks"][0]["w"].shape == (3, 3, shape[-1], channels)
    x = jax.random.uniform(jax.random.key(1), (3, *shape))
    assert conv4_embed(params, x).shape == (3, feat)
    assert conv4_apply(params, x).shape == (3, 5)


def test_batch_norm_uses_batch_statistics_and_groups():
    x = jax.random.normal(jax.random.key(0), (6, 4, 4, 3)) * 3 + 2
    y = batch_norm(x, jnp.ones(3), jnp.zeros(3))
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var((0, 1, 2)), 1, atol=1e-3)
    g = batch_norm(x, jnp.ones(3), jnp.zeros(3), groups=2)
    np.testing.assert_allclose(g[:3], batch_norm(x[:3], jnp.ones(3), jnp.zeros(3)), atol=1e-5)
    np.testing.assert_allclose(g[3:], batch_norm(x[3:], jnp.ones(3), jnp.zeros(3)), atol=1e-5)
    # transductive: an image's embedding depends on the rest of its batch
    params = conv4_init(jax.random.key(1), (16, 16, 1), channels=4)
    imgs = jax.random.uniform(jax.random.key(2), (4, 16, 16, 1))
    assert not np.allclose(conv4_embed(params, imgs)[:2], conv4_embed(params, imgs[:2]))


def test_mlp_shapes_and_init():
    params = mlp_init(jax.random.key(0), (1, 40, 40, 1))
    assert [l["w"].shape for l in params["layers"]] == [(1, 40), (40, 40), (40, 1)]
    assert float(jnp.max(jnp.abs(params["layers"][0]["w"]))) <= 0.02  # truncated normal, std 0.01
    assert mlp_apply(params, jnp.ones((7, 1))).shape == (7, 1)
    a, b = mlp_init(jax.random.key(3)), mlp_init(jax.random.key(3))
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("size", [16, pytest.param(28, marks=pytest.mark.slow)])
def test_jit_vmap_gradient_matches_eager(size):
    """Guards the pooling formulation: jit(grad(vmap(conv4_embed))) must equal its eager value."""
    params = conv4_init(jax.random.key(0), (size, size, 1), channels=8)
    x = jax.random.uniform(jax.random.key(1), (3, 10, size, size, 1))
    ct = jax.random.normal(jax.random.key(2), (3, 10, 8))
    f = lambda p: jnp.vdot(jax.vmap(lambda xi: conv4_embed(p, xi))(x), ct)  # noqa: E731
    eager, jitted = jax.grad(f)(params), jax.jit(jax.grad(f))(params)
    for a, b in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(jitted)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)


def test_max_pool_matches_reduce_window():
    from metabench.baselines.backbones import max_pool2, max_pool2_reduce_window

    for n in (7, 8):
        x = jax.random.normal(jax.random.key(n), (2, n, n, 3))
        np.testing.assert_array_equal(max_pool2(x), max_pool2_reduce_window(x))


@pytest.mark.parametrize("shape", [(28, 28, 1), (27, 27, 2), (84, 84, 3)])
@pytest.mark.parametrize("stride", [1, 2])
def test_im2col_conv_matches_xla_convolution(shape, stride):
    """The im2col path (few input channels) equals ``lax.conv_general_dilated`` SAME, incl. stride 2."""
    from metabench.baselines.backbones import conv3x3

    x = jax.random.normal(jax.random.key(0), (2, *shape))
    w = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], 5))
    ref = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(conv3x3(x, w, stride)), np.asarray(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels,stride", [(1, 1), (1, 2), (8, 2), (8, 1)])
def test_conv3x3_derivatives_match_xla_convolution(channels, stride):
    """Whichever path ``conv3x3`` takes (im2col for few channels and for stride 2 on CPU,
    ``lax.conv_general_dilated`` otherwise), its value, gradient and a Hessian-vector
    product (what second-order MAML differentiates) equal XLA's convolution's, in float64."""
    from metabench.baselines.backbones import conv3x3

    def conv_ref(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (3, 9, 9, channels), jnp.float64)
        w = jax.random.normal(jax.random.key(1), (3, 3, channels, 4), jnp.float64)
        v = jax.random.normal(jax.random.key(2), w.shape, jnp.float64)

        def derivatives(conv):
            loss = lambda w, x: jnp.sum(jnp.tanh(conv(x, w)) ** 2)  # noqa: E731
            g = jax.grad(loss, argnums=(0, 1))
            hvp = jax.jvp(lambda w: jax.grad(loss)(w, x), (w,), (v,))[1]
            return jax.jit(lambda w, x: (loss(w, x), *g(w, x), hvp))(w, x)

        for ours, ref in zip(derivatives(lambda x, w: conv3x3(x, w, stride)), derivatives(conv_ref)):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-10, atol=1e-10)


def test_strided_conv4_is_finn_omniglot_network():
    """pool='stride': stride-2 convs 28 -> 14 -> 7 -> 4 -> 2, spatial mean, ``channels`` features."""
    params = conv4_init(jax.random.key(0), (28, 28, 1), channels=16, n_out=5, pool="stride")
    assert params["head"]["w"].shape == (16, 5)
    x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))
    assert conv4_embed(params, x, pool="stride").shape == (4, 16)
    assert conv4_apply(params, x, pool="stride").shape == (4, 5)
    assert conv4_feature_size((28, 28, 1), 16, pool="stride") == 16
    with pytest.raises(ValueError, match="unknown Conv-4 pooling 'avg'"):
        conv4_embed(params, x, pool="avg")


def _bn_relu_ref(x, g, b, groups):
    from metabench.baselines.backbones import batch_norm

    return jax.nn.relu(batch_norm(x, g, b, groups))


@pytest.mark.parametrize("groups", [1, 3])
def test_bn_relu_hand_vjp_matches_autodiff_to_second_order(groups):
    """``bn_relu``'s value, gradient and a reverse-over-reverse Hessian-vector product (what
    second-order MAML differentiates) equal autodiff of ``relu(batch_norm(...))``, float64."""
    from metabench.baselines.backbones import bn_relu

    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(0), 5)
        x = jax.random.normal(k[0], (6, 5, 5, 4), jnp.float64) * 2 + 0.5
        g = 1 + 0.3 * jax.random.normal(k[1], (4,), jnp.float64)
        b = 0.2 * jax.random.normal(k[2], (4,), jnp.float64)
        ct = jax.random.normal(k[3], x.shape, jnp.float64)
        v = jax.random.normal(k[4], x.shape, jnp.float64)

        def derivatives(f):
            loss = lambda x, g, b: jnp.sum(jnp.tanh(f(x, g, b, groups)) * ct)  # noqa: E731
            grads = jax.grad(loss, argnums=(0, 1, 2))
            hvp = jax.grad(lambda x, g, b: jnp.vdot(jax.grad(loss)(x, g, b), v), argnums=(0, 1, 2))
            return (loss(x, g, b), *grads(x, g, b), *hvp(x, g, b))

        for ours, ref in zip(derivatives(bn_relu), derivatives(_bn_relu_ref)):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-9, atol=1e-10)
        np.testing.assert_array_equal(np.asarray(bn_relu(x, g, b, groups)), np.asarray(_bn_relu_ref(x, g, b, groups)))


@pytest.mark.parametrize("b,chunk", [(6, 1), (7, 3), (8, 8)])
def test_chunked_weight_gradient_matches_xla(b, chunk):
    """``conv3x3_weight_grad`` (nine slice matmuls summed over zero-padded chunks) equals XLA's
    weight gradient, and ``conv3x3_chunked_dw``'s value, gradients and second-order gradients
    equal ``lax.conv_general_dilated``'s, float64, under ``jit`` and eagerly."""
    from metabench.baselines.backbones import conv3x3_chunked_dw, conv3x3_weight_grad

    dn = ("NHWC", "HWIO", "NHWC")
    ref_conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)  # noqa: E731
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(1), 4)
        x = jax.random.normal(k[0], (b, 6, 5, 3), jnp.float64)
        w = jax.random.normal(k[1], (3, 3, 3, 4), jnp.float64)
        dy = jax.random.normal(k[2], (b, 6, 5, 4), jnp.float64)
        v = jax.random.normal(k[3], w.shape, jnp.float64)
        dw_ref = jax.vjp(lambda w: ref_conv(x, w), w)[1](dy)[0]
        np.testing.assert_allclose(np.asarray(conv3x3_weight_grad(x, dy, chunk)), np.asarray(dw_ref), rtol=1e-10)

        def derivatives(conv, jit):
            loss = lambda w, x: jnp.sum(jnp.tanh(conv(x, w)) ** 2)  # noqa: E731
            g = jax.grad(loss, argnums=(0, 1))
            hvp = jax.grad(lambda w, x: jnp.vdot(jax.grad(loss)(w, x), v), argnums=(0, 1))
            f = lambda w, x: (loss(w, x), *g(w, x), *hvp(w, x))  # noqa: E731
            return (jax.jit(f) if jit else f)(w, x)

        ref = derivatives(ref_conv, True)
        for jit in (True, False):
            for ours, r in zip(derivatives(lambda x, w: conv3x3_chunked_dw(x, w, chunk), jit), ref):
                np.testing.assert_allclose(np.asarray(ours), np.asarray(r), rtol=1e-9, atol=1e-10)


def test_conv3x3_takes_the_chunked_path_only_for_large_stride1_convolutions(monkeypatch):
    """The size rule: stride-1 many-channel convolutions over >= ``CHUNKED_DW_MIN_ROWS`` output
    rows on the CPU backend; their gradient equals XLA's (float32 tolerance), and setting the
    threshold to ``None`` switches the path off."""
    from metabench.baselines import backbones as bb

    assert bb._dw_chunk(100, 14, 14) == round(bb.CHUNKED_DW_TARGET_ROWS / 196)
    assert bb._dw_chunk(25, 14, 14) is None  # 4,900 rows: XLA's weight gradient
    assert bb._dw_chunk(3, 84, 84) == 1  # large images: one image a chunk
    assert bb._dw_chunk(60, 14, 14, 32) == 30  # target 41.8 images: the nearest divisor of 60
    x = jax.random.normal(jax.random.key(0), (60, 14, 14, 32))
    w = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, 32, 8))
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(bb.conv3x3(x, w) ** 2)))(w))
    assert "scan" in jaxpr  # the chunked weight gradient
    loss = lambda w: jnp.sum(jnp.sin(bb.conv3x3(x, w)))  # noqa: E731
    fast = jax.jit(jax.grad(loss))(w)
    monkeypatch.setattr(bb, "CHUNKED_DW_MIN_ROWS", None)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(bb.conv3x3(x, w) ** 2)))(w))
    assert "scan" not in jaxpr
    np.testing.assert_allclose(np.asarray(fast), np.asarray(jax.jit(jax.grad(loss))(w)), rtol=2e-4, atol=2e-4)
