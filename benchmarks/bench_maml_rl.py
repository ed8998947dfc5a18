"""MAML for RL through the harness: train, evaluate on the frozen 40 test tasks, summarise.

Each run is ``metabench.harness.run`` (the result JSON goes to ``--out``/results/, named
by the harness). For Nav2d the script also measures the thesis' "solved" criterion
(``Nav2d.solved``: return > 330 or goal in < 38 steps) per adaptation step on the same
test tasks with the same adaptation keys as the harness's evaluation, and it writes a
summary (curves, CIs, wall times, published reference numbers) to ``--summary``.

    python benchmarks/bench_maml_rl.py --runs nav2d-easy:maml-rl:60 nav2d-easy:random-policy:1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import metabench
import metabench.baselines  # noqa: F401
from metabench.harness import eval_key, run
from metabench.atomic import atomic_write_text
from metabench.leaderboard.published import PUBLISHED_RL


def solved_rates(result: Any, env: Any) -> list[float]:
    """Fraction of test episodes solved after 0..S adaptation steps (Nav2d only)."""
    from metabench.learner import make_learner

    rec = result.record
    learner = make_learner(rec["learner"]["id"], env, **rec["learner"]["overrides"])
    n = env.num_eval_tasks
    keys = jax.random.split(eval_key(env, "test"), n)
    fn = jax.jit(jax.vmap(lambda t, k: env.solved(learner.adaptation_trajectories(result.state, t, k))))
    solved = np.asarray(fn(env.eval_tasks("test"), keys))  # [N, S, E]
    return [float(x) for x in solved.mean(axis=(0, 2))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="ENV:LEARNER:STEPS[:k=v,k=v]")
    ap.add_argument("--out", default="leaderboard")
    ap.add_argument("--summary", default="benchmarks/results/maml_rl.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = Path(args.summary)
    summary = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    for spec in args.runs:
        env_id, learner_id, steps, *rest = spec.split(":")
        overrides = dict(kv.split("=", 1) for kv in rest[0].split(",")) if rest and rest[0] else {}
        env = metabench.make(env_id)
        t0 = time.perf_counter()
        result = run(env, learner_id, steps=int(steps), seed=args.seed, out_dir=args.out, val_every=0,
                     overrides=overrides, progress=False)
        wall = time.perf_counter() - t0
        rec = result.record
        curve = rec["curves"][0] if rec["curves"] else {"mean": [rec["metrics"][0]["mean"]], "ci95": [rec["metrics"][0]["ci95"]]}
        entry = {
            "env": rec["env"]["id"], "learner": learner_id, "overrides": overrides, "steps": int(steps),
            "result_file": str(result.path), "return_mean": curve["mean"], "return_ci95": curve["ci95"],
            "n_tasks": rec["metrics"][0]["n_tasks"], "train_wall_s": rec["train"]["wall_time_s"],
            "eval_wall_s": rec["eval"]["wall_time_s"], "total_wall_s": wall,
            "config": rec["learner"]["config"], "published": PUBLISHED_RL.get(env_id.split("-v")[0]),
        }
        if env_id.startswith("nav2d"):
            entry["solved_rate"] = solved_rates(result, env)
        summary["runs"][rec["name"]] = entry
        print(json.dumps({k: entry[k] for k in ("env", "learner", "steps", "return_mean", "return_ci95")}
                         | ({"solved_rate": entry["solved_rate"]} if "solved_rate" in entry else {})), flush=True)
        summary["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                              "jax": jax.__version__, "backend": jax.default_backend(),
                              "load_average": list(os.getloadavg()),
                              "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
