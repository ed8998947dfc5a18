"""Throughput and memory of ProtoNet and MAML on CPU; writes ``benchmarks/results/learners.json``.

    /work/venv/bin/python benchmarks/bench_learners.py [--repeats 5] [--quick] [--only protonet,maml,...]

Sections (each a list of rows: setting, items/s from the wall-clock median, CPU ms per
item from the process-CPU-time median, and ratios to the peers and targets of issue 3):

* ``protonet``  Omniglot-shaped 5-way 5-shot, 15 queries, Conv-4 64, one episode per step.
  ``e2e``: jitted sampler + jitted step, two dispatches per episode (what a harness loop
  does); ``fused``: sampling inside the jitted step; ``scan``: ``lax.scan`` over 20 steps
  with sampling inside (dispatch amortised). Variants: max-pool as ``reduce_window``
  (XLA ``select_and_scatter`` gradient) vs crop+reshape+max (the default).
* ``maml_omniglot``  5-way 1-shot, 15 queries, Conv-4 64, 1 inner step (lr 0.4), meta-batch
  32, second and first order; tasks vmapped vs ``lax.map`` one at a time.
* ``maml_sinusoid``  10-shot, 10 queries, MLP 1-40-40-1, meta-batch 25, 1 inner step:
  per-step dispatch vs ``lax.scan`` over 100 fused (sample + step) iterations.
* ``memory``  second-order MAML, Omniglot 5w1s, meta-batch 4: XLA's compiled memory
  analysis (temp + argument + output bytes) for 1, 2, 5, 10, 20 inner steps with
  ``lax.scan`` and 1, 2, 5, 10 unrolled (20 unrolled second-order steps take minutes to compile).
* ``xla_flags``  the ProtoNet fused step in a subprocess per ``XLA_FLAGS`` setting.

The machine is shared (2 cores, several engineers): every number is a median over
``--repeats`` repeats, the load average is recorded next to it, and the CPU-time column
(less sensitive to other processes than wall time) is reported as well. Data: the real
``omniglot-lite`` env when it can be built from ``$METABENCH_DATA``, otherwise a synthetic
Omniglot-shaped env (28x28x1, same shapes, same compute).

Findings, 2026-11-22 on the shared 2-core AMD EPYC (jax 0.10.2, XLA CPU; 1-min load
average 3-6 during every run, so wall-clock rates are low; CPU ms per item is the steadier
figure). All numbers were measured by this script (runs logged, medians of 2-5 repeats):

* MAML sinusoid, second order, meta-batch 25: 23k tasks/s with a jitted sampler + jitted
  step per iteration, 45k tasks/s with ``lax.scan`` over 100 fused iterations (target 20k:
  met; 27x / 54x the learn2learn peer). First order: 27k / 74k.
* Memory of second-order MAML (Omniglot 5w1s, meta-batch 4, XLA memory analysis): ~298 MB
  at 1 inner step, +32 MB per unrolled step (589 MB at 10); with ``lax.scan`` +52 MB per
  step (1288 MB at 20).
* ProtoNet 5w5s: ~245 ms CPU per episode, 2.7-4 episodes/s wall under load (target 15:
  NOT met). Max-pool gradient: ``reduce_window`` (select_and_scatter) 367 ms CPU/episode
  vs 245 ms for the strided-slice maximum (-33%); reshape forms are as fast but were
  miscompiled (see ``backbones.max_pool2``). im2col for the first conv: 260 -> 245 ms.
  ``lax.scan`` over 20 training steps: 2918 ms CPU per episode, 12x WORSE (convolutions
  inside an XLA CPU while loop are slow), so the harness should not scan conv steps.
* MAML Omniglot 5w1s second order (meta-batch 8 in the quick run): ``task_map="unroll"``
  256 ms CPU per task (3 tasks/s wall under load), ``lax.map`` 1946 ms (while loop, 7.6x
  worse), ``vmap`` 2585 ms (per-task weights become grouped convolutions). Hence MAML's
  ``task_map="auto"`` picks ``unroll`` for images, ``vmap`` for regression. Target 40
  tasks/s: NOT met (~0.1x of the peer's 27 tasks/s in wall time under load).
* 2026-11-29, same machine, 1-min load ~3 (a training run beside it), quick run, meta-batch 8:
  Finn et al.'s Omniglot network (``pool="stride"``: stride-2 convs, spatial mean; MAML's
  default for grey images since then) vs max-pooling: second order 16.8 vs 5.3 tasks/s
  (58 vs 196 CPU ms per task), first order 24.1 vs 5.6 (42 vs 177 CPU ms). 58 CPU ms per
  second-order task is ~34 tasks/s on two idle cores if both stay busy; the 40 target is
  still NOT met as measured. End to end in the harness (omniglot-lite-5w1s, meta-batch 16,
  load ~4): 13.6 tasks/s second order, 17.5 first order.
* 2026-11-29 late, machine otherwise idle (load 1.1-1.6 = this benchmark), quick run, 3 repeats:
  MAML 5w1s strided network, meta-batch 8: second order 26.7 tasks/s fused / 23.8 e2e (66 / 72
  CPU ms per task; 0.99x / 0.88x the peer, 0.67x / 0.60x the target), first order 36.5 / 36.8
  (1.04x / 1.05x the peer). A probe minutes earlier at load ~0.7 gave 35.7 (second order)
  and, at meta-batch 16, 36.8 fused / 30.5 e2e: run-to-run spread is ~30% here. The 40 tasks/s
  second-order target is still NOT met. ProtoNet 5w5s: 6.2 e2e / 6.5 fused episodes/s
  (206-225 CPU ms per episode, 0.62-0.65x the peer); one episode per step is the fastest
  per episode (a probe: 228 / 236 / 337 CPU ms per episode at 1 / 2 / 4 episodes per step).
* 2026-11-30, idle machine, a probe (not a section of this script; the code was not kept):
  batch norm + ReLU with a hand-written closed-form backward pass (``jax.custom_vjp``;
  values and first and second derivatives equal to XLA's to 1e-14 in float64) made the
  ProtoNet Conv-4 gradient (100 images, 28x28, 64 channels) SLOWER: 270 vs 150 ms wall
  (max-pool network), 44 vs 31 ms (Finn's strided network). The custom-VJP boundary stops
  XLA fusing the normalisation into its neighbours. Per-op timings of that gradient (same
  probe): at 14x14x64 the convolution forward, input gradient and weight gradient take
  16 / 16 / 31 ms (88 / 90 / 46 GFLOPS; a 2048^3 matmul reaches 170-190 GFLOPS here);
  im2col for the weight gradient is slower (54 ms), as is a custom VJP that computes it
  by im2col. The whole gradient is 5.4 GFLOP in ~150 ms (~36 GFLOPS). 15 episodes/s end to
  end needs <= 67 ms per episode, i.e. >= 80 GFLOPS sustained over every layer including
  the memory-bound ones: about the convolution forward's best rate, so the ProtoNet target
  is not reachable with XLA's CPU convolutions on this 2-core machine.
* 2026-11-30 (later), idle machine (load 1.4-1.8 = this benchmark), full ``maml_omniglot``
  section, meta-batch 32, 3 repeats: stride-2 convolutions by im2col + matmul (patches
  9/4 of the input; ``backbones.IM2COL_STRIDED_ON_CPU``, the CPU default since) against
  XLA's strided convolution in the same run. Second order: 47.1 fused / 45.5 e2e tasks/s
  (40.5 / 42.1 CPU ms per task) vs 36.9 / 33.4 (52.0 / 57.4 ms): 1.28x / 1.36x; the 40
  tasks/s target is MET in this run (1.18x / 1.14x; 1.74x / 1.69x the peer). First order:
  47.2 / 49.7 vs 50.1 / 48.0, no change within the noise. Tasks by ``lax.map`` / ``vmap``
  with im2col in the same run: 36.7 / 28.3 (second order), so ``unroll`` stays the image
  default. A probe at meta-batch 8 minutes earlier: second order 27.1 -> 36.8, first order
  45.4 -> 50.0. Winograd F(2x2, 3x3) for the stride-1 convolutions, a
  probe (code not kept): at 14x14x64 x 100 images the forward took 28.7 ms vs XLA's 16.1,
  the input + weight gradient 62.8 vs 67.7, the weight gradient alone 63.6 vs 53.7; its
  16 batched 64x64 matmuls ran at ~67 GFLOPS and the tile transforms are memory-bound, so
  it does not change the ProtoNet picture above. Also a probe (code not kept, a training
  run beside it): max-pooling before the batch-norm affine (exact, since a per-channel
  monotone map commutes with max- or, for a negative scale, min-pooling; statistics still
  from the full-resolution input) made the ProtoNet Conv-4 gradient slower, 219-228 vs
  179-196 ms.
* 2026-11-30 (later), idle machine, full ``protonet`` section, 3 repeats: 7.1 episodes/s e2e
  and fused (190 CPU ms per episode; 0.71x the peer, 0.47x the target); first convolution
  by XLA instead of im2col 8.0 (171 ms). An interleaved probe minutes later (value + gradient
  of the ProtoNet loss, 100 images, im2col / XLA alternating twice) showed no consistent
  difference: 162 / 181 vs 175 / 166 ms at 28x28x1, 1716 / 1740 vs 1684 / 1813 ms at 84x84x3,
  so the first convolution keeps im2col.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

import metabench
from metabench.baselines import backbones
from metabench.baselines._synthetic import synthetic_env
from metabench.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "learners.json"

#: issue 3: peers measured on this machine (learn2learn / PyTorch CPU) and our targets.
PEERS = {
    "protonet_omniglot_5w5s": {"peer": 10.0, "target": 15.0, "unit": "episodes/s"},
    "maml_omniglot_5w1s_so": {"peer": 27.0, "target": 40.0, "unit": "tasks/s"},
    "maml_omniglot_5w1s_fo": {"peer": 35.0, "target": None, "unit": "tasks/s"},
    "maml_sinusoid_so": {"peer": 840.0, "peer_functional_pytorch": 5500.0, "target": 20000.0, "unit": "tasks/s"},
}


def measure(fn: Callable[[], Any], calls: int, repeats: int) -> dict[str, float]:
    """Median wall and process-CPU seconds per call of ``fn`` (blocked), after one warm-up call."""
    jax.block_until_ready(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            out = fn()
        jax.block_until_ready(out)
        walls.append((time.perf_counter() - w0) / calls)
        cpus.append((time.process_time() - c0) / calls)
    return {"wall_s": float(np.median(walls)), "cpu_s": float(np.median(cpus)), "load": os.getloadavg()[0]}


def row(name: str, items: int, m: dict[str, float], peer_key: str | None = None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "setting": name,
        "items_per_call": items,
        "items_per_s": items / m["wall_s"],
        "cpu_ms_per_item": 1e3 * m["cpu_s"] / items,
        "load_avg_1min": round(m["load"], 2),
        **extra,
    }
    if peer_key:
        p = PEERS[peer_key]
        r["vs_peer"] = r["items_per_s"] / p["peer"]
        if p.get("target"):
            r["vs_target"] = r["items_per_s"] / p["target"]
    print(f"  {name:<58} {r['items_per_s']:>10.1f} /s  cpu {r['cpu_ms_per_item']:8.2f} ms/item  load {m['load']:.1f}"
          + (f"  x{r['vs_peer']:.2f} peer" if peer_key else "") + (f"  x{r['vs_target']:.2f} target" if "vs_target" in r else ""),
          flush=True)
    return r


def omniglot_env(ways: int, shots: int) -> tuple[Any, str]:
    try:
        env = metabench.make(f"omniglot-lite-{ways}w{shots}s")
        return env, env.spec.id
    except Exception as e:  # noqa: BLE001 - fall back to synthetic data of the same shapes
        env = synthetic_env(ways, shots, 15, classes=60, per_class=20, size=28)
        return env, f"synthetic 28x28x1 ({type(e).__name__}: real omniglot-lite unavailable)"


def _runners(learner: Any, env: Any, batch: int, scan_len: int) -> dict[str, Callable[[], Any]]:
    """``e2e``, ``fused`` and ``scan`` callables advancing a closed-over state."""
    sample = env.jit_sample_tasks(batch)
    step = jax.jit(learner.meta_train_step)

    def fused_fn(state: Any, key: jax.Array) -> Any:
        k1, k2 = jax.random.split(key)
        return learner.meta_train_step(state, env.sample_tasks(k1, batch), k2)

    def scan_fn(state: Any, key: jax.Array) -> Any:
        def body(s: Any, k: jax.Array) -> Any:
            s, m = fused_fn(s, k)
            return s, m["loss"]

        return jax.lax.scan(body, state, jax.random.split(key, scan_len))

    fused, scanned = jax.jit(fused_fn), jax.jit(scan_fn)
    box = {"state": learner.init(jax.random.key(0)), "key": jax.random.key(1)}

    def advance(f: Callable[..., Any], sampled: bool = False) -> Callable[[], Any]:
        def go() -> Any:
            box["key"], k1, k2 = jax.random.split(box["key"], 3)
            if sampled:
                box["state"], m = step(box["state"], sample(k1), k2)
            else:
                box["state"], m = f(box["state"], k1)
            return m

        return go

    return {"e2e": advance(None, sampled=True), "fused": advance(fused), "scan": advance(scanned)}


def _pool_reshape_two(x: jax.Array) -> jax.Array:
    """Pooling by reshape + two single-axis maxes: fast, but miscompiled under jit in vmapped
    MAML with jax 0.10.2 on CPU (see ``backbones.max_pool2``): timed here only, never used."""
    b, h, w, c = x.shape
    return x[:, : 2 * (h // 2), : 2 * (w // 2)].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=4).max(axis=2)


def bench_protonet(repeats: int, quick: bool) -> list[dict[str, Any]]:
    env, data = omniglot_env(5, 5)
    print(f"protonet 5w5s ({data})")
    rows = []
    calls, scan_len = (2, 5) if quick else (5, 20)
    for pool_name, pool in (
        ("strided-slices-max", backbones.max_pool2),
        ("reshape-two-reduces", _pool_reshape_two),
        ("reduce_window", backbones.max_pool2_reduce_window),
    ):
        saved = backbones.max_pool2
        backbones.max_pool2 = pool
        try:
            learner = metabench.make_learner("protonet", env)
            run = _runners(learner, env, 1, scan_len)
            for mode in (("e2e", "fused", "scan") if pool_name == "strided-slices-max" else ("fused",)):
                items = scan_len if mode == "scan" else 1
                m = measure(run[mode], calls if mode != "scan" else 1, repeats)
                rows.append(row(f"protonet {mode} pool={pool_name}", items, m, "protonet_omniglot_5w5s", data=data))
        finally:
            backbones.max_pool2 = saved
    saved_c = backbones.IM2COL_MAX_CHANNELS
    backbones.IM2COL_MAX_CHANNELS = 0
    try:
        learner = metabench.make_learner("protonet", env)
        m = measure(_runners(learner, env, 1, scan_len)["fused"], calls, repeats)
        rows.append(row("protonet fused pool=strided-slices-max first-conv=lax (no im2col)", 1, m, "protonet_omniglot_5w5s", data=data))
    finally:
        backbones.IM2COL_MAX_CHANNELS = saved_c
    return rows


def bench_maml_omniglot(repeats: int, quick: bool) -> list[dict[str, Any]]:
    env, data = omniglot_env(5, 1)
    print(f"maml omniglot 5w1s ({data})")
    rows = []
    mb = 8 if quick else 32
    # (pool, task_map, stride-2 convolutions by im2col): the last is backbones.IM2COL_STRIDED_ON_CPU
    settings = [("stride", "unroll", True), ("stride", "unroll", False), ("max", "unroll", True)]
    if not quick:
        settings += [("stride", "map", True), ("stride", "vmap", True)]
    saved = backbones.IM2COL_STRIDED_ON_CPU
    try:
        for fo in (False, True):
            for pool, task_map, strided_im2col in settings:
                backbones.IM2COL_STRIDED_ON_CPU = strided_im2col
                learner = metabench.make_learner(
                    "maml", env, first_order=fo, task_map=task_map, meta_batch=mb, pool=pool
                )
                run = _runners(learner, env, mb, 2)
                key = "maml_omniglot_5w1s_fo" if fo else "maml_omniglot_5w1s_so"
                default = (pool, task_map) == ("stride", "unroll")
                conv = "" if pool == "max" else (" strided-conv=im2col" if strided_im2col else " strided-conv=lax")
                # e2e (jitted sampler + step, what the harness does) for the default network only
                for mode in ("fused", "e2e") if default else ("fused",):
                    m = measure(run[mode], 1, repeats)
                    name = f"maml {'fo' if fo else 'so'} pool={pool}{conv} task_map={task_map} meta_batch={mb} {mode}"
                    rows.append(row(name, mb, m, key, data=data))
    finally:
        backbones.IM2COL_STRIDED_ON_CPU = saved
    return rows


def bench_maml_sinusoid(repeats: int, quick: bool) -> list[dict[str, Any]]:
    env = metabench.make("sinusoid-10s")
    print("maml sinusoid 10-shot, meta-batch 25, 1 inner step")
    rows = []
    scan_len = 20 if quick else 100
    for fo in (False, True):
        for inner_scan in (False, True):
            learner = metabench.make_learner("maml", env, first_order=fo, meta_batch=25, inner_scan=inner_scan)
            run = _runners(learner, env, 25, scan_len)
            key = "maml_sinusoid_so" if not fo else None
            tag = f"{'fo' if fo else 'so'} inner_scan={inner_scan}"
            for mode in ("e2e", "fused", "scan"):
                items = 25 * (scan_len if mode == "scan" else 1)
                m = measure(run[mode], 3 if mode == "scan" else 50, repeats)
                rows.append(row(f"maml sinusoid {tag} {mode}", items, m, key))
    return rows


def bench_memory(quick: bool) -> list[dict[str, Any]]:
    env, data = omniglot_env(5, 1)
    print(f"memory: second-order MAML 5w1s meta-batch 4 ({data})")
    rows = []
    tasks = env.sample_tasks(jax.random.key(0), 4)
    for inner_scan in (False, True):
        for steps in (1, 2, 5) if quick else ((1, 2, 5, 10, 20) if inner_scan else (1, 2, 5, 10)):
            learner = metabench.make_learner("maml", env, meta_batch=4, inner_steps=steps, inner_scan=inner_scan)
            state = learner.init(jax.random.key(0))
            compiled = jax.jit(learner.meta_train_step).lower(state, tasks, jax.random.key(1)).compile()
            ma = compiled.memory_analysis()
            r = {
                "setting": f"maml so inner_steps={steps} inner_scan={inner_scan}",
                "inner_steps": steps,
                "inner_scan": inner_scan,
                "temp_mb": ma.temp_size_in_bytes / 2**20,
                "argument_mb": ma.argument_size_in_bytes / 2**20,
                "output_mb": ma.output_size_in_bytes / 2**20,
                "peak_estimate_mb": (ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes) / 2**20,
            }
            print(f"  {r['setting']:<45} temp {r['temp_mb']:8.1f} MB  peak~ {r['peak_estimate_mb']:8.1f} MB", flush=True)
            rows.append(r)
    return rows


_FLAG_CHILD = """
import json, sys, jax
sys.path.insert(0, {here!r})
import bench_learners as b
env, data = b.omniglot_env(5, 5)
import metabench
run = b._runners(metabench.make_learner("protonet", env), env, 1, 2)
m = b.measure(run["fused"], {calls}, {repeats})
print("RESULT" + json.dumps(m))
"""


def bench_xla_flags(repeats: int, quick: bool) -> list[dict[str, Any]]:
    print("xla flags (protonet fused step, one subprocess each)")
    rows = []
    settings = [
        "",
        "--xla_cpu_multi_thread_eigen=false",
        "--xla_cpu_use_thunk_runtime=false",
        "--xla_cpu_use_xnnpack=true",
        "--xla_cpu_use_onednn=true",
    ]
    for flags in settings:
        env_vars = {**os.environ, "XLA_FLAGS": flags}
        code = _FLAG_CHILD.format(here=str(Path(__file__).parent), calls=2 if quick else 5, repeats=repeats)
        p = subprocess.run([sys.executable, "-c", code], env=env_vars, capture_output=True, text=True, timeout=900)
        line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT")), None)
        if line is None:
            err = (p.stderr.strip().splitlines() or ["?"])[-1][:200]
            print(f"  XLA_FLAGS={flags!r}: failed: {err}")
            rows.append({"setting": f"XLA_FLAGS={flags!r}", "error": err})
            continue
        rows.append(row(f"protonet fused XLA_FLAGS={flags!r}", 1, json.loads(line[6:]), "protonet_omniglot_5w5s"))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer calls and settings (a smoke run)")
    ap.add_argument("--only", default="protonet,maml_omniglot,maml_sinusoid,memory,xla_flags")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sections = {
        "protonet": lambda: bench_protonet(args.repeats, args.quick),
        "maml_omniglot": lambda: bench_maml_omniglot(args.repeats, args.quick),
        "maml_sinusoid": lambda: bench_maml_sinusoid(args.repeats, args.quick),
        "memory": lambda: bench_memory(args.quick),
        "xla_flags": lambda: bench_xla_flags(args.repeats, args.quick),
    }
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = dict(previous.get("results", {}))
    for name in wanted:  # the file is rewritten after every section, so a cut-short run keeps what it measured
        results[name] = {
            "rows": sections[name](),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repeats": args.repeats,
            "quick": args.quick,
        }
        payload = {
            "benchmark": "bench_learners",
            "peers_and_targets": PEERS,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                        "backend": jax.default_backend()},
            "results": results,
        }
        atomic_write_json(args.out, payload)
        print(f"wrote {args.out} ({name})", flush=True)


if __name__ == "__main__":
    main()
