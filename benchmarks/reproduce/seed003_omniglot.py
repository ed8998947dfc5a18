"""The learned update rules on omniglot-lite (issue 24): ``meta-lstm``, ``meta-lstm-plus``,
``turtle`` and ``turtle-fo`` on ``omniglot-lite-5w1s`` and ``-5w5s``, several seeds, reduced budget.

    python benchmarks/reproduce/seed003_omniglot.py --seeds 0-2            # run (resumable), then summarise
    python benchmarks/reproduce/seed003_omniglot.py --summary-only         # re-summarise from the JSON

Seed 003 reports these learners on miniImageNet and CUB (Tables 3.1/3.4), not on Omniglot,
so there is no published number to reproduce here: these rows show the learners train on a
real image env through the harness, at a budget a 2-core CPU affords. The budget is stated
per learner in ``SEED003_OMNIGLOT`` of ``metabench.leaderboard.canonical`` (meta-training tasks = ``steps * meta_batch``) and recorded in each
result; TURTLE's meta-batch is reduced from MAML's 32 to ``4`` (one second-order TURTLE step
on 32 Omniglot tasks needs ~20 GB and ~20 s here). No validation (the final state is
evaluated), the env's 600 frozen test tasks. Every run is an ordinary harness run whose JSON
lands in ``<out>/results``; the summary (mean and 95% CI over seeds of the final test
accuracy) goes to ``benchmarks/results/seed003_omniglot.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ENVS = ("omniglot-lite-5w1s", "omniglot-lite-5w5s")
def _budgets() -> dict[str, tuple[dict[str, Any], int]]:
    """learner id -> (config overrides, meta-training steps), from the leaderboard's labelled
    budgets (``metabench.leaderboard.canonical.SEED003_OMNIGLOT``), so these runs are its rows."""
    from metabench.leaderboard.canonical import SEED003_OMNIGLOT

    return {lid: (dict(b.overrides), b.steps) for lid, b in SEED003_OMNIGLOT.items()}


BUDGETS = _budgets()


def seeds_of(spec: str) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in spec.split(",")]


def train(args: argparse.Namespace) -> None:
    import metabench
    from metabench.harness import run

    for seed in seeds_of(args.seeds):  # seed outermost: every (env, learner) gets a row before any gets three
        for env_id in args.envs.split(","):
            env = metabench.make(env_id)
            for lid in args.learners.split(","):
                overrides, steps = BUDGETS[lid]
                t0 = time.perf_counter()
                print(f"== {env_id} {lid} seed {seed}: {steps} steps, overrides {overrides}", flush=True)
                res = run(env, lid, steps=steps, seed=seed, out_dir=args.out, val_every=0,
                          checkpoint_every=max(1, steps // 3), resume=True, overrides=overrides,
                          progress=not args.no_progress)
                acc = res.record["metrics"][0]["mean"]
                print(f"   test accuracy {acc:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)


def collect(args: argparse.Namespace) -> dict[str, dict[str, list[dict]]]:
    """Result records under ``out`` matching each (env, learner)'s budget and overrides."""
    import metabench

    found: dict[str, dict[str, list[dict]]] = {}
    for env_id in args.envs.split(","):
        env = metabench.make(env_id)
        wanted = {}
        for lid in args.learners.split(","):
            overrides, steps = BUDGETS[lid]
            wanted[lid] = (metabench.make_learner(lid, env, **overrides).config, steps)
        for f in sorted(Path(args.out, "results").glob(f"{env.spec.id}__*.json")):
            r = json.loads(f.read_text())
            lid = r["learner"]["id"]
            if lid in wanted and wanted[lid][0].matches(r["learner"]["config"]) and r["run"]["steps"] == wanted[lid][1]:
                found.setdefault(env_id, {}).setdefault(lid, []).append(r)
    return found


def summarise(found: dict[str, dict[str, list[dict]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for env_id, by in found.items():
        for lid, recs in by.items():
            acc = np.array([r["metrics"][0]["mean"] for r in recs])
            half = 1.96 * acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else None  # over seeds
            overrides, steps = BUDGETS[lid]
            table.setdefault(env_id, {})[lid] = {
                "runs": len(recs), "seeds": sorted(r["seed"] for r in recs), "mean": float(acc.mean()),
                "ci95_over_seeds": None if half is None else float(half), "final_accuracy": acc.tolist(),
                "ci95_over_tasks": [r["metrics"][0].get("ci95") for r in recs], "steps": steps,
                "meta_batch": recs[0]["learner"]["config"]["meta_batch"], "overrides": overrides,
                "train_wall_s": [r["train"]["wall_time_s"] for r in recs],
                "code": sorted({str(r["code"].get("git_revision")) + ("+dirty" if r["code"].get("git_dirty") else "")
                                for r in recs}),
            }
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", default=",".join(ENVS))
    ap.add_argument("--learners", default=",".join(BUDGETS))
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--out", default="leaderboard")
    ap.add_argument("--summary", default="benchmarks/results/seed003_omniglot.json")
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    unknown = sorted(set(args.learners.split(",")) - set(BUDGETS))
    if unknown:
        ap.error(f"no budget for learner(s) {unknown}; choose from {sorted(BUDGETS)}")
    if not args.summary_only:
        train(args)
    table = summarise(collect(args))
    from metabench.atomic import atomic_write_json

    atomic_write_json(Path(args.summary), {"budgets": {k: {"overrides": o, "steps": s} for k, (o, s) in BUDGETS.items()},
                                           "table": table})
    for env_id, by in table.items():
        for lid, row in by.items():
            ci = row["ci95_over_seeds"]
            print(f"{env_id:22s} {lid:15s} n={row['runs']} mean {100 * row['mean']:.2f} %"
                  + (f" +- {100 * ci:.2f} (95 % CI over seeds)" if ci is not None else
                     f" (one seed; +- {100 * (row['ci95_over_tasks'][0] or float('nan')):.2f} over the 600 tasks)"))


if __name__ == "__main__":
    main()
