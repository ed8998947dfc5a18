"""Time per task and memory of the learned update rules against MAML, in one process.

    python benchmarks/bench_learned_rules.py [--repeats 3] [--meta-batch 8]

Seed 003 §3.5.5 reports TURTLE slightly faster than second-order MAML. For each env
(``omniglot-lite-5w1s`` when ``$METABENCH_DATA`` has it, else a synthetic env of its shapes;
``sinusoid-5s``) and each learner (``maml`` second order, ``turtle``, ``meta-lstm``,
``meta-lstm-plus``) this measures one jitted meta-training step on a fixed meta-batch:
tasks/s (median over repeats), CPU ms per task, and XLA's compiled memory analysis
(temp + argument + output bytes) of the step. Two MAML rows: its published default
(``inner_steps`` by env: 1 step on both) and the same T as TURTLE (5), the like-for-like
comparison; ratios are ``learner time per task / MAML time per task`` from the same run.
The meta-learner LSTM's per-parameter state (``2 * hidden + 2`` floats, no copy of the
parameters) is reported in bytes per base-learner parameter. Results:
``benchmarks/results/learned_rules.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import metabench
from metabench.atomic import atomic_write_json
from metabench.baselines._synthetic import synthetic_env


def env_for(name: str) -> tuple[Any, str]:
    if name == "sinusoid":
        env = metabench.make("sinusoid-5s")
        return env, env.spec.id
    try:
        env = metabench.make("omniglot-lite-5w1s")
        return env, env.spec.id
    except Exception as e:  # noqa: BLE001 - same shapes, same compute
        return synthetic_env(5, 1, 15, classes=60, per_class=20, size=28), f"synthetic 28x28x1 ({type(e).__name__})"


def measure(learner: Any, env: Any, meta_batch: int, repeats: int, calls: int) -> dict[str, Any]:
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), meta_batch, "train")
    step = jax.jit(learner.meta_train_step)
    t0 = time.perf_counter()
    compiled = step.lower(state, tasks, jax.random.key(2)).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    mem_bytes = int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) if mem else None
    state, _ = compiled(state, tasks, jax.random.key(2))
    jax.block_until_ready(state)
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            state, _ = compiled(state, tasks, jax.random.key(2))
        jax.block_until_ready(state)
        walls.append((time.perf_counter() - w0) / (calls * meta_batch))
        cpus.append((time.process_time() - c0) / (calls * meta_batch))
    return {"s_per_task": float(np.median(walls)), "tasks_per_s": 1.0 / float(np.median(walls)),
            "cpu_ms_per_task": 1e3 * float(np.median(cpus)), "wall_range_s_per_task": [min(walls), max(walls)],
            "compile_s": compile_s, "step_memory_bytes": mem_bytes, "load_avg_1min": os.getloadavg()[0]}


def inner_step_flops(learner: Any, env: Any) -> dict[str, float | None]:
    """XLA's FLOP count of one inner step's two parts, forward only, on one training task.

    ``base``: the support-set loss and its gradient (all MAML pays per step); ``rule``: the
    update rule applied to every coordinate (``theta - alpha * g`` for MAML, ``g_phi`` for
    TURTLE, the two LSTM layers for the meta-learner LSTM). Their ratio bounds what any
    implementation of the rule can gain: the rule's own work is ``rule / base`` MAML steps.
    """
    task = jax.tree_util.tree_map(lambda a: a[0], env.sample_tasks(jax.random.key(1), 1, "train"))
    params = learner.model.init(jax.random.key(0))
    x, y = task.support
    rule = learner.update_rule(True)
    rp = rule.init(jax.random.key(3), params)
    rs = rule.init_state(rp, params)

    def flops(f: Any, *a: Any) -> float | None:
        ca = jax.jit(f).lower(*a).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        return float(ca["flops"]) if ca and "flops" in ca else None

    loss, g = jax.value_and_grad(learner.loss)(params, x, y)
    base = flops(jax.value_and_grad(learner.loss), params, x, y)
    upd = flops(lambda rp_, rs_, p_, g_, l_: rule.update(rp_, rs_, p_, g_, l_), rp, rs, params, g, loss)
    return {"base_grad_flops": base, "rule_update_flops": upd,
            "rule_over_base": (upd / base) if base and upd else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--meta-batch", type=int, default=8)
    ap.add_argument("--families", default="omniglot,sinusoid", help="comma list of omniglot, sinusoid")
    ap.add_argument("--out", default="benchmarks/results/learned_rules.json")
    ap.add_argument("--flops-only", action="store_true", help="only the per-inner-step FLOP split (fast; no timing)")
    args = ap.parse_args()
    rows = []
    for family in args.families.split(","):
        env, env_name = env_for(family)
        settings = [("maml (published T)", "maml", {}), ("maml T=5", "maml", {"inner_steps": 5}),
                    ("turtle (T=5)", "turtle", {}), ("meta-lstm", "meta-lstm", {}),
                    ("meta-lstm-plus", "meta-lstm-plus", {})]
        ref = None
        for label, lid, kw in settings:
            learner = metabench.make_learner(lid, env, meta_batch=args.meta_batch, **kw)
            m = {} if args.flops_only else measure(learner, env, args.meta_batch, args.repeats, args.calls)
            n = sum(int(x.size) for x in jax.tree_util.tree_leaves(learner.model.init(jax.random.key(0))))
            r = {"env": env_name, "setting": label, "learner": lid, "inner_steps": learner.config.inner_steps,
                 "meta_batch": args.meta_batch, "base_params": n, **m}
            rule = learner.update_rule(True)
            r["rule_state_bytes_per_param"] = 4 * rule.state_floats_per_param()
            r.update(inner_step_flops(learner, env))
            if label == "maml T=5":
                ref = m.get("s_per_task")
            rows.append(r)
        for r in rows:
            if r["env"] == env_name and ref:
                r["time_per_task_vs_maml_T5"] = r["s_per_task"] / ref
        for r in rows:
            if r["env"] == env_name and args.flops_only:
                print(f"{env_name:<22} {r['setting']:<20} base grad {r['base_grad_flops']:.3g} FLOPs  rule update "
                      f"{r['rule_update_flops']:.3g} FLOPs  rule/base {r['rule_over_base']:.2f}", flush=True)
            elif r["env"] == env_name:
                print(f"{env_name:<22} {r['setting']:<20} T={r['inner_steps']:<2} {r['tasks_per_s']:8.2f} tasks/s "
                      f"cpu {r['cpu_ms_per_task']:8.1f} ms/task  x{r.get('time_per_task_vs_maml_T5', float('nan')):.2f} "
                      f"MAML-T5 time  mem {r['step_memory_bytes'] / 2**20 if r['step_memory_bytes'] else float('nan'):.0f} MiB"
                      f"  state {r['rule_state_bytes_per_param']} B/param  rule/base FLOPs {r['rule_over_base'] or float('nan'):.2f}"
                      f"  load {r['load_avg_1min']:.1f}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "baselines", "metabench"],
                                capture_output=True, text=True).stdout.strip())
    atomic_write_json(Path(args.out), {"rows": rows, "code": {"commit": commit, "dirty": dirty},
                                       "host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
                                       "jax": jax.__version__, "argv": vars(args)})


if __name__ == "__main__":
    main()
