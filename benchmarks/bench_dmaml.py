"""Wall time of one DMAML run against workers, epochs and tasks (seed 002 Table 6.3), and the merge's cost.

Runs itself in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(the flag must precede jax), so the workers are spread over 8 simulated CPU devices; on
this machine those 8 devices share 2 CPU cores. For each scaling ratio r in 1, 2, 4, 8, 16
(Table 6.2) it times one jitted ``meta_train_step`` (= one DMAML run) with workers = r,
epochs = r or tasks = r * base, the others at the baseline (1 worker, 1 epoch, ``base``
tasks), as the mean of ``--repeats`` runs after a warm-up (the thesis: mean of runs 2-10).
Workers are padded to fill the 8 devices where they divide (1, 2, 4: a mesh of that many
devices; 8, 16: all 8). The merge is timed alone: the same collectives as a run (one
all-gather of the ``[W, E]`` losses, one psum of the weighted parameters, the all-gather of
the workers' Adam states) on the real parameter shapes, against one worker epoch (a run
with 1 worker, 1 epoch).

    python benchmarks/bench_dmaml.py --env sinusoid-10s --base 10        # default
    python benchmarks/bench_dmaml.py --env omniglot-lite-5w1s --env-set queries=1 --base 8 --ratios 1 4 16 \
        --repeats 5 --set channels=16 task_map=vmap

Writes ``benchmarks/results/dmaml_scaling_<env>.json``. Not a test: no assertions on time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (1, 2, 4, 8, 16)
#: seed 002 Table 6.3: seconds per run (Omniglot, 2 servers x 56 cores, 4 TITAN X)
THESIS = {"workers": [7.67, 7.49, 9.59, 10.05, 10.97], "epochs": [7.67, 14.9, 28.69, 56.95, 114.93],
          "tasks": [7.67, 15.02, 28.92, 57.19, 116.67]}
FLAGS = ("--xla_force_host_platform_device_count=8 --xla_cpu_collective_timeout_seconds=600 "
         "--xla_cpu_collective_call_terminate_timeout_seconds=600")


def _inner(args: argparse.Namespace) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, PartitionSpec

    import metabench
    from metabench.baselines.dmaml import WORKERS
    from metabench.harness.provenance import code_version

    def value(v: str) -> Any:
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v

    env = metabench.make(args.env, **{k: value(v) for k, v in (s.split("=", 1) for s in args.env_set)})
    extra: dict[str, Any] = {k: value(v) for k, v in (s.split("=", 1) for s in args.set)}
    devs = jax.devices()

    def time_run(workers: int, epochs: int, tasks: int) -> dict[str, Any]:
        n_dev = max(d for d in (1, 2, 4, 8) if workers % d == 0 and d <= len(devs))
        mesh = Mesh(np.array(devs[:n_dev]), (WORKERS,))
        learner = metabench.make_learner("dmaml-fo", env, mesh=mesh, workers=workers, epochs=epochs, tasks=tasks,
                                         **extra)
        state = learner.init(jax.random.key(0))
        sample = env.jit_sample_tasks(learner.config.meta_batch)
        step = jax.jit(learner.meta_train_step)
        t0 = time.perf_counter()
        state, _ = step(state, sample(jax.random.key(0)), jax.random.key(0))
        jax.block_until_ready(state)
        compile_s = time.perf_counter() - t0
        times = []
        for i in range(args.repeats):
            tasks_i = jax.block_until_ready(sample(jax.random.key(i + 1)))
            t0 = time.perf_counter()
            state, m = step(state, tasks_i, jax.random.key(i + 1))
            jax.block_until_ready(state)
            times.append(time.perf_counter() - t0)
        return {"workers": workers, "epochs": epochs, "tasks": tasks, "seen_tasks": workers * epochs * tasks,
                "devices": n_dev, "compile_plus_first_s": compile_s, "run_s": float(np.mean(times)),
                "run_s_min": float(np.min(times)), "runs_timed": len(times)}

    rows: dict[str, list[dict[str, Any]]] = {"workers": [], "epochs": [], "tasks": []}
    for r in args.ratios:
        rows["workers"].append(time_run(r, 1, args.base))
        rows["epochs"].append(time_run(1, r, args.base))
        rows["tasks"].append(time_run(1, 1, r * args.base))
        print(json.dumps({k: v[-1] for k, v in rows.items()}), file=sys.stderr, flush=True)

    # the merge alone, on 8 devices with 8 workers (one per device), real parameter shapes
    learner = metabench.make_learner("dmaml-fo", env, workers=8, tasks=args.base, **extra)
    state = learner.init(jax.random.key(0))
    mesh = learner.worker_mesh
    w = 8

    def merge(params: Any, opt: Any, losses: jax.Array) -> Any:
        allloss = jax.lax.all_gather(losses, WORKERS, tiled=True)
        weights = jnp.full((w,), 1.0 / w)
        a = jax.lax.dynamic_slice_in_dim(weights, jax.lax.axis_index(WORKERS), 1)
        p = jax.tree.map(lambda x: jax.lax.psum(jnp.tensordot(a, x[None], axes=1), WORKERS), params)
        o = jax.lax.all_gather(opt, WORKERS, tiled=True)
        return p, o, allloss

    rep, row = PartitionSpec(), PartitionSpec(WORKERS)
    fn = jax.jit(jax.shard_map(merge, mesh=mesh, in_specs=(rep, row, row), out_specs=(rep, rep, rep),
                               check_vma=False))
    losses = jnp.zeros((w, 1))
    jax.block_until_ready(fn(state.params, state.opt_state, losses))
    t0 = time.perf_counter()
    n = 50
    for _ in range(n):
        out = fn(state.params, state.opt_state, losses)
    jax.block_until_ready(out)
    merge_s = (time.perf_counter() - t0) / n
    leaves = jax.tree.leaves(state.params)
    d = int(sum(x.size for x in leaves))
    opt_floats = int(sum(x.size for x in jax.tree.leaves(state.opt_state) if jnp.issubdtype(x.dtype, jnp.floating)))
    epoch = rows["workers"][0]["run_s"]
    return {
        "env": args.env, "base_tasks": args.base, "learner": "dmaml-fo", "set": extra, "env_set": args.env_set,
        "devices": len(devs), "cpu_cores": os.cpu_count(), "repeats": args.repeats, "rows": rows,
        "ratios": {k: [r["run_s"] / v[0]["run_s"] for r in v] for k, v in rows.items()},
        "ratios_measured": args.ratios,
        "thesis_table_6_3_s": THESIS, "thesis_ratios": {k: [x / v[0] for x in v] for k, v in THESIS.items()},
        "merge": {"params": d, "workers": w, "psum_bytes_per_device": 4 * d, "loss_gather_bytes": 4 * w,
                  "adam_gather_bytes": 4 * opt_floats, "time_s": merge_s, "one_worker_epoch_s": epoch,
                  "merge_over_epoch": merge_s / epoch},
        "code": code_version(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="sinusoid-10s")
    ap.add_argument("--base", type=int, default=10, help="tasks per epoch at ratio 1")
    ap.add_argument("--set", nargs="*", default=["eval_steps=1"], help="learner overrides key=value")
    ap.add_argument("--env-set", nargs="*", default=[])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--ratios", type=int, nargs="*", default=list(RATIOS))
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        print(json.dumps(_inner(args)))
        return 0
    env = {**os.environ, "XLA_FLAGS": FLAGS, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, __file__, "--inner", "--env", args.env, "--base", str(args.base), "--repeats",
           str(args.repeats), "--ratios", *map(str, args.ratios), "--set", *args.set, "--env-set", *args.env_set]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    out = ROOT / "benchmarks" / "results" / f"dmaml_scaling_{args.env}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    for k in ("workers", "epochs", "tasks"):
        print(f"{k:8s}", " ".join(f"{r['run_s'] * 1e3:8.2f}ms" for r in result["rows"][k]),
              "| ratios", " ".join(f"{x:5.2f}" for x in result["ratios"][k]),
              "| thesis", " ".join(f"{result['thesis_ratios'][k][RATIOS.index(r)]:5.2f}" for r in args.ratios))
    m = result["merge"]
    print(f"merge: {m['time_s'] * 1e3:.3f} ms ({m['psum_bytes_per_device']} B psum, {m['adam_gather_bytes']} B Adam "
          f"gather) vs one worker epoch {m['one_worker_epoch_s'] * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
