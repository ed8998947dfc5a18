"""Peak memory of the meta-gradient: ES vs backpropagation (seed 000, section II-E).

Part 1 -- task length. ES around MAML (``es-maml``) vs second-order backprop MAML (``maml``)
with the same Conv-4 and env, for 1, 5, 10, 20, 50 inner steps. The number reported is the
compiled meta-train step's XLA ``memory_analysis()``: ``temp_size_in_bytes`` (scratch
buffers, where backprop keeps the residuals of every inner step) and the total
``argument + output + temp``. Only compilation is needed, not execution. ES must stay flat
while backprop grows roughly linearly (``Omega_BP = g x l``).

Part 2 -- ES-ProtoNet vs backprop ProtoNet, 64 channels, total population 64: measured
compiled temp sizes (per device on an 8-device ``pop`` mesh, i.e. 8 candidates per device
as in seed 000 Table III's v3-8 row; and on 1 device with the 64 candidates evaluated 8 at
a time) next to the analytical ratio of section II-E: forward-mode Jacobian
``D_psi x D_phi`` (``D_psi = ways x prototype size``) over the ES population matrix
``P x D_phi``, i.e. ``ways x D_c / P``, for our 28x28 Omniglot and for the seed's 32x32.

Each measurement runs in a fresh subprocess (part 2 with 8 forced CPU devices).
Writes ``benchmarks/results/es_memory.json`` atomically. Usage::

    python benchmarks/bench_es_memory.py [--channels 32] [--steps 1 5 10 20 50] [--timeout 900]
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

RESULTS = Path(__file__).resolve().parent / "results" / "es_memory.json"


def _memory(compiled) -> dict:
    m = compiled.memory_analysis()
    temp, arg, out = int(m.temp_size_in_bytes), int(m.argument_size_in_bytes), int(m.output_size_in_bytes)
    return {"temp_bytes": temp, "argument_bytes": arg, "output_bytes": out, "total_bytes": temp + arg + out}


def _compile_step(learner, env, meta_batch: int):
    import jax

    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), meta_batch)
    key = jax.random.key(2)
    if hasattr(learner, "_step"):  # ES learners: their jitted step (state already on the mesh)
        from metabench.baselines.es.mesh import place_replicated

        tasks, key = place_replicated((tasks, key), learner.pop_mesh)
        fn = learner._step
    else:
        fn = jax.jit(learner.meta_train_step)
    t0 = time.perf_counter()
    compiled = fn.lower(state, tasks, key).compile()
    return compiled, time.perf_counter() - t0


def worker_maml(args: argparse.Namespace) -> dict:
    """One (learner, inner_steps) point of part 1."""
    from metabench.baselines._synthetic import synthetic_env
    from metabench.learner import make_learner

    env = synthetic_env(ways=args.ways, shots=1, queries=args.queries)
    common = dict(channels=args.channels, inner_steps=args.inner_steps, meta_batch=args.meta_batch, inner_scan=True)
    if args.learner == "maml":
        learner = make_learner("maml", env, **common)
    else:
        learner = make_learner("es-maml", env, population=args.population, candidate_batch=1, **common)
    compiled, secs = _compile_step(learner, env, args.meta_batch)
    return {**_memory(compiled), "compile_s": round(secs, 2)}


def worker_protonet(args: argparse.Namespace) -> dict:
    """Part 2: ES-ProtoNet (8-device mesh and 1 device) vs backprop ProtoNet at 64 channels."""
    import jax
    import numpy as np
    from jax.sharding import Mesh

    from metabench.baselines._synthetic import synthetic_env
    from metabench.baselines.backbones import conv4_feature_size
    from metabench.learner import make_learner

    env = synthetic_env(ways=args.ways, shots=5, queries=args.queries, classes=60)
    out: dict = {"devices": jax.device_count()}
    common = dict(channels=64, meta_batch=1)
    bp = make_learner("protonet", env, **common)
    compiled, _ = _compile_step(bp, env, 1)
    out["backprop_protonet"] = _memory(compiled)
    mesh8 = Mesh(np.array(jax.devices()), ("pop",))
    es8 = make_learner("es-protonet", env, mesh=mesh8, population=64, **common)
    compiled, _ = _compile_step(es8, env, 1)
    out["es_protonet_8dev_per_device"] = _memory(compiled)
    es8b = make_learner("es-protonet", env, mesh=mesh8, population=64, candidate_batch=1, **common)
    compiled, _ = _compile_step(es8b, env, 1)
    out["es_protonet_8dev_per_device_candidate_batch1"] = _memory(compiled)
    mesh1 = Mesh(np.array(jax.devices()[:1]), ("pop",))
    es1 = make_learner("es-protonet", env, mesh=mesh1, population=64, candidate_batch=8, **common)
    compiled, _ = _compile_step(es1, env, 1)
    out["es_protonet_1dev_batch8"] = _memory(compiled)
    out["num_params"] = es8.dim
    out["prototype_size"] = conv4_feature_size((28, 28, 1), 64, 4)
    return out


def run_worker(kind: str, extra: list[str], timeout: int, devices: int = 1) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    else:
        env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=["maml", "protonet"])
    p.add_argument("--learner", default="maml")
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10, 20, 50])
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--parts", type=int, nargs="+", default=[1, 2],
                   help="which parts to run; a part not run is kept from the existing results file")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.worker == "maml":
        print(json.dumps(worker_maml(args)))
        return
    if args.worker == "protonet":
        print(json.dumps(worker_protonet(args)))
        return

    import jax

    base = ["--channels", str(args.channels), "--ways", str(args.ways), "--queries", str(args.queries),
            "--meta-batch", str(args.meta_batch), "--population", str(args.population)]
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    part1 = [] if 1 in args.parts else old.get("part1_task_length", [])
    for steps in args.steps if 1 in args.parts else []:
        row = {"inner_steps": steps}
        for learner in ("maml", "es-maml"):
            row[learner] = run_worker("maml", [*base, "--learner", learner, "--inner-steps", str(steps)], args.timeout)
            print(steps, learner, row[learner], flush=True)
        part1.append(row)
    ways2 = 10
    if 2 not in args.parts:
        atomic_write_json(args.out, {**old, "part1_task_length": part1})
        return
    part2 = run_worker("protonet", ["--ways", str(ways2), "--queries", "15"], args.timeout, devices=8)
    print(part2, flush=True)
    analytic = {}
    if "error" not in part2:
        d_phi, pop = part2["num_params"], 64
        for name, d_c in (("ours_28x28", part2["prototype_size"]), ("seed_32x32", 64 * 2 * 2)):
            d_psi = ways2 * d_c
            analytic[name] = {
                "prototype_size_D_c": d_c, "D_psi": d_psi, "D_phi": d_phi,
                "jacobian_floats": d_psi * d_phi, "population_matrix_floats": pop * d_phi,
                "jacobian_over_population": d_psi / pop,
            }
        bp_temp = max(1, part2["backprop_protonet"]["temp_bytes"])
        part2["measured_es_8dev_temp_over_backprop_temp"] = part2["es_protonet_8dev_per_device"]["temp_bytes"] / bp_temp
        part2["measured_es_8dev_batch1_temp_over_backprop_temp"] = (
            part2["es_protonet_8dev_per_device_candidate_batch1"]["temp_bytes"] / bp_temp
        )
        part2["population_matrix_bytes_per_device"] = 8 * d_phi * 4
    result = {
        "benchmark": "es_memory",
        "what": "XLA compiled memory_analysis() of one meta-train step (bytes); CPU backend",
        "part1_config": {"env": f"synthetic {args.ways}-way 1-shot {args.queries}-query 28x28",
                         "channels": args.channels, "meta_batch": args.meta_batch,
                         "es_population": args.population, "inner_scan": True, "maml_order": "second"},
        "part1_task_length": part1,
        "part2_protonet_64ch_pop64": {"env": f"synthetic {ways2}-way 5-shot 15-query 28x28", **part2},
        "part2_analytic_section_II_E": analytic,
        "jax": jax.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
