"""ES throughput: candidate evaluations per second on 1 and 8 (simulated CPU) devices.

For ``es-protonet`` (Conv-4, synthetic Omniglot-shaped 5-way 1-shot 15-query episodes,
meta_batch 1, total population 64) each configuration runs in a fresh subprocess (the
device count is an XLA flag read at start-up): one warm-up step (compilation, timed
separately), then ``--steps`` timed steps. ``evals_per_s = population * steps / seconds``.
Both standardisation modes are timed (local: one pmean; global: one all_gather + one psum).

All-reduce cost per step: a jitted ``shard_map`` that only does ``lax.pmean`` of the
``D``-float gradient over ``pop``, timed over ``--reps`` calls, next to the same program with
no collective (``x * 1``) to separate dispatch overhead from the reduction itself.

On a shared 2-core CPU, 8 simulated devices share the same cores, so they measure the
sharding overhead, not a speed-up. XLA aborts a CPU collective when not every simulated
device reaches it within 40 s, which happened here under load, so the 8-device run raises
that limit (``--xla_cpu_collective_timeout_seconds=600
--xla_cpu_collective_call_terminate_timeout_seconds=600``). Writes ``benchmarks/results/es_throughput.json``
atomically. Usage::

    python benchmarks/bench_es_throughput.py [--steps 5] [--channels 16] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from metabench.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "es_throughput.json"


def worker(args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from metabench.baselines._synthetic import synthetic_env
    from metabench.baselines.es.mesh import POP, pop_mesh
    from metabench.learner import make_learner

    env = synthetic_env(ways=5, shots=1, queries=15)
    out: dict = {"devices": jax.device_count()}
    tasks_all = [env.sample_tasks(jax.random.key(100 + i), 1) for i in range(args.steps + 1)]
    for mode in ("local", "global"):
        learner = make_learner("es-protonet", env, channels=args.channels, population=args.population,
                               meta_batch=1, standardise=mode)
        state = learner.init(jax.random.key(0))
        t0 = time.perf_counter()
        state, m = learner.meta_train_step(state, tasks_all[0], jax.random.key(0))
        jax.block_until_ready((state, m))
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(args.steps):
            state, m = learner.meta_train_step(state, tasks_all[i + 1], jax.random.key(i + 1))
        jax.block_until_ready((state, m))
        secs = time.perf_counter() - t0
        out[mode] = {
            "first_step_s": round(compile_s, 3), "step_s": secs / args.steps,
            "evals_per_s": args.population * args.steps / secs, "loss_last": float(m["loss"]),
        }
        out["num_params"] = learner.dim

    mesh = pop_mesh(None)
    d = out["num_params"]
    x = jax.device_put(jnp.ones((jax.device_count(), d), jnp.float32), NamedSharding(mesh, PartitionSpec(POP)))

    def timed(body) -> float:
        f = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=PartitionSpec(POP), out_specs=PartitionSpec(POP)))
        jax.block_until_ready(f(x))
        t0 = time.perf_counter()
        for _ in range(args.reps):
            y = f(x)
        jax.block_until_ready(y)
        return (time.perf_counter() - t0) / args.reps

    out["pmean_s"] = timed(lambda g: jax.lax.pmean(g, POP))
    out["no_collective_s"] = timed(lambda g: g * 1.0)
    out["allreduce_cost_s"] = out["pmean_s"] - out["no_collective_s"]
    out["allreduce_floats"] = d
    return out


#: XLA aborts a CPU collective whose participants do not all arrive within 40 s; on a loaded
#: 2-core machine 8 simulated devices can miss that, so the 8-device run allows 600 s.
PATIENT = "--xla_cpu_collective_timeout_seconds=600 --xla_cpu_collective_call_terminate_timeout_seconds=600"


def run_worker(devices: int, extra: list[str], timeout: int, flags: str = "") -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {flags}".strip()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *extra]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--population", type=int, default=64)
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    import jax

    extra = ["--steps", str(args.steps), "--reps", str(args.reps), "--channels", str(args.channels),
             "--population", str(args.population)]
    runs = {}
    for name, devices, flags in (("1_device", 1, ""), ("8_devices", 8, PATIENT)):
        runs[name] = {"xla_flags": flags, **run_worker(devices, extra, args.timeout, flags)}
        print(name, runs[name], flush=True)
    result = {
        "benchmark": "es_throughput",
        "config": {"learner": "es-protonet", "env": "synthetic 5-way 1-shot 15-query 28x28", "channels": args.channels,
                   "population_total": args.population, "meta_batch": 1, "timed_steps": args.steps,
                   "allreduce_reps": args.reps},
        "runs": runs,
        "cpu_count": os.cpu_count(),
        "note": ("simulated CPU devices share the host's cores (a shared 2-core machine): measures overhead, "
                 "not scaling; the 8-device run raises XLA's 40 s CPU collective timeout (see module docstring)"),
        "jax": jax.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
