"""ProtoNet training-step variants timed side by side in one process (issue 31, item 3).

Each variant is the whole step of ``metabench``'s ``protonet`` on Omniglot 5w5s shapes (100
images 28x28x1, 15 queries, Snell Conv-4 64, Adam 1e-3): loss, gradient and Adam update,
jitted, with one piece swapped:

* ``base``: the landed primitives (``backbones.conv3x3`` with its chunked weight gradient,
  ``bn_relu`` with its hand-written VJP, ``max_pool2``);
* ``autodiff-bn``: batch norm + ReLU differentiated by autodiff (``relu(batch_norm(...))``);
* ``xla-dw``: XLA's own weight gradient for the stride-1 64-channel convolutions;
* ``pre-31``: both of the above, the step as it was before issue 31's changes;
* ``bn-onepass``: batch statistics from E[x] and E[x^2] in one pass (forward change only);
* ``bf16``: convolutions on bfloat16 inputs and weights, float32 accumulation
  (``preferred_element_type``), float32 parameters and everything else;
* ``lax-conv0``: the first block's 1-channel convolution by ``lax.conv_general_dilated``
  instead of im2col.

The rounds alternate between variants (``--rounds`` rounds of ``--iters`` steps each, the
state threaded through as in training); the table gives each variant's median ms/step and
its ratio to ``base``, plus the loss after the timed steps (same episodes, same init), so a
variant that changes the numerics shows it. Writes
``benchmarks/results/protonet_step_variants.json``::

    python benchmarks/protonet_step_variants.py [--rounds 7] [--iters 10] [--variants base,bn-vjp] [--conv-grads]

``--conv-grads`` adds, per convolution shape of ``SWEEP``, the forward pass, the input gradient
and the weight gradient, XLA's against the landed chunked form (``conv_grads``): the table
behind ``backbones.CHUNKED_DW_MIN_ROWS``.

XLA flags are process-wide: run the script again with ``XLA_FLAGS=...`` and ``--tag`` to
compare a flag (the JSON records ``XLA_FLAGS``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

VARIANTS = ("base", "autodiff-bn", "xla-dw", "pre-31", "bn-onepass", "bf16", "lax-conv0")


def _median_ms(fn: Callable[..., Any], *args: Any, iters: int = 10, rounds: int = 5) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(iters):
            r = fn(*args)
        jax.block_until_ready(r)
        out.append((time.perf_counter() - t) / iters * 1e3)
    return float(np.median(out))


#: (batch, size, channels) of the weight-gradient sweep: ProtoNet's Omniglot blocks, other batch
#: sizes, and Conv-4 32 on 84x84 images (miniImageNet / CUB shapes).
SWEEP = ((100, 14, 64), (100, 7, 64), (100, 3, 64), (16, 14, 64), (25, 14, 64), (64, 14, 64), (400, 14, 64),
         (80, 42, 32), (80, 21, 32), (80, 10, 32))


def conv_grads() -> list[dict[str, Any]]:
    """Per stride-1 convolution of ``SWEEP`` (plus ProtoNet's 28x28x1 first block): the forward
    pass, the input gradient and the weight gradient, XLA's and the landed ``conv3x3``'s
    (chunked where ``backbones._dw_chunk`` says so), with the landed one's relative error;
    and at 100 images 14x14x64 the chunked form at several chunk sizes."""
    import jax
    import jax.numpy as jnp

    from metabench.baselines import backbones as bb

    key = jax.random.key(0)
    rows: list[dict[str, Any]] = []
    for b, hw, ci in ((100, 28, 1), *SWEEP):
        co = 64 if ci == 1 else ci
        x = jax.random.normal(key, (b, hw, hw, ci))
        w = 0.1 * jax.random.normal(key, (3, 3, ci, co))
        ct = jax.random.normal(key, (b, hw, hw, co))

        def dw(conv: Callable[..., Any]) -> Callable[..., Any]:
            return jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) * ct), argnums=1))

        xla, landed = dw(bb._lax_conv), dw(bb.conv3x3)
        ref = xla(x, w)
        rows.append({"conv": f"{b}x{hw}x{hw}x{ci}->{co}", "fwd_gflop": b * hw * hw * co * ci * 9 * 2 / 1e9,
                     "chunk": bb._dw_chunk(b, hw, hw) if ci > bb.IM2COL_MAX_CHANNELS else "im2col",
                     "fwd_ms": _median_ms(jax.jit(bb.conv3x3), x, w),
                     "dX_ms": _median_ms(jax.jit(jax.grad(lambda x, w: jnp.sum(bb.conv3x3(x, w) * ct))), x, w),
                     "dW_xla_ms": _median_ms(xla, x, w), "dW_landed_ms": _median_ms(landed, x, w),
                     "dW_landed_rel_err": float(jnp.max(jnp.abs(landed(x, w) - ref)) / jnp.max(jnp.abs(ref)))})
    x = jax.random.normal(key, (100, 14, 14, 64))
    dy = jax.random.normal(key, (100, 14, 14, 64))
    for chunk in (100, 25, 10, 5, 2):
        fn = jax.jit(lambda x, dy, c=chunk: bb.conv3x3_weight_grad(x, dy, c))
        rows.append({"dW_form_100x14x14x64": f"chunks of {chunk} images", "ms": _median_ms(fn, x, dy)})
    return rows


def build(variant: str) -> tuple[Callable[..., Any], Any]:
    """``(step, optimiser)``; ``step(params, opt_state, x[100,28,28,1], y_support[25]) -> (params, opt_state, loss)``."""
    import jax
    import jax.numpy as jnp
    import optax

    from metabench.baselines import backbones as bb
    from metabench.baselines.protonet import proto_logits

    eps = bb.BN_EPS

    def bn_onepass(x: jax.Array, g: jax.Array, b: jax.Array) -> jax.Array:
        axes = tuple(range(x.ndim - 1))
        m = jnp.mean(x, axis=axes)
        m2 = jnp.mean(x * x, axis=axes)
        inv = jax.lax.rsqrt(jnp.maximum(m2 - m * m, 0.0) + eps)
        return jax.nn.relu((x - m) * (g * inv) + b)

    def bn_relu(x: jax.Array, g: jax.Array, b: jax.Array) -> jax.Array:
        if variant in ("autodiff-bn", "pre-31"):
            return jax.nn.relu(bb.batch_norm(x, g, b))
        if variant == "bn-onepass":
            return bn_onepass(x, g, b)
        return bb.bn_relu(x, g, b)

    def conv(h: jax.Array, w: jax.Array, i: int) -> jax.Array:
        if variant == "bf16":
            return jax.lax.conv_general_dilated(
                h.astype(jnp.bfloat16), w.astype(jnp.bfloat16), (1, 1), "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)
        if variant in ("xla-dw", "pre-31") and i > 0:
            return bb._lax_conv(h, w)
        if variant == "lax-conv0" and i == 0:
            return jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return bb.conv3x3(h, w)

    def embed(params: Any, x: jax.Array) -> jax.Array:
        h = x
        for i, blk in enumerate(params["blocks"]):
            h = bb.max_pool2(bn_relu(conv(h, blk["w"], i), blk["gamma"], blk["beta"]))
        return h.reshape(h.shape[0], -1)

    def loss(params: Any, x: jax.Array, ys: jax.Array) -> jax.Array:
        emb = embed(params, x)
        logits = proto_logits(emb[:25], ys, emb[25:], 5, "euclidean", 1.0)
        yq = jnp.repeat(jnp.arange(5), 15)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yq).mean()

    opt = optax.adam(1e-3)

    @jax.jit
    def step(params: Any, opt_state: Any, x: jax.Array, ys: jax.Array) -> tuple[Any, Any, jax.Array]:
        lval, g = jax.value_and_grad(loss)(params, x, ys)
        upd, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state, lval

    return step, opt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--tag", default="")
    p.add_argument("--conv-grads", action="store_true", help="also time each convolution's fwd / dW / dX")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import jax

    from metabench.atomic import atomic_write_json
    from metabench.baselines.backbones import conv4_init
    from metabench.harness.provenance import code_version, host_info

    names = args.variants.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    key = jax.random.key(0)
    params0 = conv4_init(key, (28, 28, 1), channels=64, depth=4)
    params0 = {"blocks": params0["blocks"]}
    rng = np.random.default_rng(0)
    xs = [rng.random((100, 28, 28, 1), dtype=np.float32) for _ in range(args.iters)]
    ys = np.repeat(np.arange(5), 5).astype(np.int32)
    runs: dict[str, dict[str, Any]] = {}
    for n in names:
        step, opt = build(n)
        t = time.perf_counter()
        jax.block_until_ready(step(params0, opt.init(params0), xs[0], ys))
        runs[n] = {"step": step, "state": (params0, opt.init(params0)), "compile_s": time.perf_counter() - t,
                   "ms": [], "losses": []}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            run = runs[n]
            params, opt_state = run["state"]
            t = time.perf_counter()
            for x in xs:
                params, opt_state, lval = run["step"](params, opt_state, x, ys)
            jax.block_until_ready(lval)
            run["ms"].append((time.perf_counter() - t) / len(xs) * 1e3)
            run["losses"].append(float(lval))
            run["state"] = (params, opt_state)
    base = float(np.median(runs[names[0]]["ms"]))
    rows = []
    for n in names:
        med = float(np.median(runs[n]["ms"]))
        rows.append({"variant": n, "median_ms": med, "min_ms": float(np.min(runs[n]["ms"])),
                     "max_ms": float(np.max(runs[n]["ms"])), f"ratio_to_{names[0]}": base / med,
                     "compile_s": runs[n]["compile_s"], "final_loss": runs[n]["losses"][-1]})
        print(f"{n:12s} {med:7.1f} ms/step ({np.min(runs[n]['ms']):.1f}-{np.max(runs[n]['ms']):.1f})  "
              f"speed x{base / med:.2f} vs {names[0]}  loss after {args.rounds * args.iters} steps "
              f"{runs[n]['losses'][-1]:.4f}")
    conv_rows = conv_grads() if args.conv_grads else []
    for row in conv_rows:
        print(row)
    out = args.out or f"benchmarks/results/protonet_step_variants{'_' + args.tag if args.tag else ''}.json"
    atomic_write_json(out, {
        "benchmark": "ProtoNet step variants, omniglot 5w5s shapes, Conv-4 64, Adam 1e-3, one episode a step",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "args": vars(args), "xla_flags": os.environ.get("XLA_FLAGS", ""), "code": code_version(),
        "host": host_info(), "jax": jax.__version__, "load_average_start": list(load0),
        "load_average_end": list(os.getloadavg()), "rows": rows,
        "conv_grads": conv_rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
