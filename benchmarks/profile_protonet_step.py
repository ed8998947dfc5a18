"""Where a ProtoNet training step's milliseconds go on this CPU (issue 31, item 3: profile first).

Omniglot 5-way 5-shot with 15 queries (100 images of 28x28x1 a step), Snell et al.'s Conv-4
with 64 channels, the landed primitives of ``metabench.baselines.backbones`` (``conv3x3``,
``batch_norm``, ``max_pool2``). Times, each jitted and the median of ``--repeats`` rounds of
``--iters`` calls, in the same process:

* the whole step: loss, gradient and Adam update (``ProtoNet.meta_train_step`` on a fixed batch);
* the forward loss alone;
* per Conv-4 block and op (conv, batch norm + ReLU, 2x2 max-pool): forward, and forward plus
  the vector-Jacobian product (backward = the difference), at the block's real input shape.

The per-op rows need not add up to the step (XLA fuses across ops in the whole step); they
say which op's backward pass dominates. Writes ``benchmarks/results/profile_protonet_step.json``::

    python benchmarks/profile_protonet_step.py [--repeats 5] [--iters 20]
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _median_ms(fn: Callable[[], Any], repeats: int, iters: int) -> float:
    jax.block_until_ready(fn())
    rounds = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = None
        for _ in range(iters):
            out = fn()
        jax.block_until_ready(out)
        rounds.append((time.perf_counter() - t) / iters * 1e3)
    return float(np.median(rounds))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--out", default="benchmarks/results/profile_protonet_step.json")
    args = p.parse_args(argv)

    import metabench
    from metabench.atomic import atomic_write_json
    from metabench.baselines.backbones import batch_norm, conv3x3, conv4_init, max_pool2
    from metabench.harness.provenance import code_version, host_info

    from metabench.baselines._synthetic import synthetic_env

    env = synthetic_env(5, 5, 15, classes=40, per_class=20, size=28)
    learner = metabench.make_learner("protonet", env)
    key = jax.random.key(0)
    state = learner.init(key)
    tasks = jax.vmap(lambda k: env.sample_task(k, "train"))(jax.random.split(key, learner.config.meta_batch))
    step = jax.jit(learner.meta_train_step)
    loss = jax.jit(lambda s, t: learner.loss(s.params, t)[0])
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    full = _median_ms(lambda: step(state, tasks, key)[1]["loss"], args.repeats, args.iters)
    fwd = _median_ms(lambda: loss(state, tasks), args.repeats, args.iters)
    rows += [{"part": "whole step (loss, grad, Adam)", "ms": full}, {"part": "forward loss only", "ms": fwd}]

    params = conv4_init(key, (28, 28, 1), channels=64, depth=4)
    n = 100
    h = jax.random.normal(key, (n, 28, 28, 1))
    ops: list[tuple[str, Callable[..., jax.Array], tuple[jax.Array, ...]]] = []
    for i, blk in enumerate(params["blocks"]):
        ops.append((f"block {i} conv 3x3 {h.shape[1]}x{h.shape[2]}x{h.shape[3]}->64", conv3x3, (h, blk["w"])))
        c = conv3x3(h, blk["w"])
        ops.append((f"block {i} batch norm + ReLU", lambda x, g, b: jax.nn.relu(batch_norm(x, g, b)),
                    (c, blk["gamma"], blk["beta"])))
        act = jax.nn.relu(batch_norm(c, blk["gamma"], blk["beta"]))
        ops.append((f"block {i} max-pool 2x2", max_pool2, (act,)))
        h = max_pool2(act)
    for name, f, xs in ops:
        fj = jax.jit(f)
        out = fj(*xs)
        ct = jnp.ones_like(out)
        bj = jax.jit(lambda *a, f=f, ct=ct: jax.vjp(f, *a)[1](ct))
        t_f = _median_ms(lambda fj=fj, xs=xs: fj(*xs), args.repeats, args.iters)
        t_fb = _median_ms(lambda bj=bj, xs=xs: bj(*xs), args.repeats, args.iters)
        rows.append({"part": name, "fwd_ms": t_f, "fwd_bwd_ms": t_fb, "bwd_ms": t_fb - t_f})
    per_op = [r for r in rows if "fwd_ms" in r]
    total = sum(r["fwd_bwd_ms"] for r in per_op)
    for kind in ("conv", "batch norm", "max-pool"):
        sel = [r for r in per_op if kind in r["part"]]
        rows.append({"part": f"all {kind}", "fwd_ms": sum(r["fwd_ms"] for r in sel),
                     "fwd_bwd_ms": sum(r["fwd_bwd_ms"] for r in sel),
                     "share_of_ops": sum(r["fwd_bwd_ms"] for r in sel) / total})
    for r in rows:
        if "ms" in r:
            print(f"{r['part']:<42} {r['ms']:8.2f} ms")
        else:
            share = f"  {100 * r['share_of_ops']:.0f} % of the ops" if "share_of_ops" in r else ""
            print(f"{r['part']:<42} fwd {r['fwd_ms']:7.2f}  fwd+bwd {r['fwd_bwd_ms']:7.2f} ms{share}")
    atomic_write_json(args.out, {
        "benchmark": "ProtoNet step profile, omniglot 5w5s shapes (100 images 28x28x1), Conv-4 64",
        "repeats": args.repeats, "iters": args.iters, "rows": rows, "sum_of_ops_fwd_bwd_ms": total,
        "load_average_start": load0, "load_average_end": os.getloadavg(), "host": host_info(),
        "code": code_version(), "jax": jax.__version__,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
