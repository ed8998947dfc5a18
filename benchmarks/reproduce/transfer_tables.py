"""The transfer rows of seed 003 Tables 3.1 / 3.4 and Chen et al. 2019's Conv-4 Baseline / Baseline++.

Seed 003 (Huisman 2024, ch. 3) Table 3.1 (miniImageNet, CUB) and Table 3.4 (miniImageNet ->
CUB, CUB -> miniImageNet), rows TrainFromScratch / Finetuning / Baseline++, 5-way 1- and
5-shot, median and 95 % CI over 5 runs; Chen et al. 2019 (Table A5 / Sec. 4) Conv-4 Baseline
and Baseline++ with data augmentation. Every run is a normal harness run
(``metabench.harness.run``, JSON in ``<out>/results``); envs whose data is absent are
skipped with the loader's message. The summary (median over seeds with the order-statistic
CI of ``seed003_sinusoid.py``, and the published references of
``metabench.leaderboard.published``) goes to ``<out>/transfer_tables.json``.

    python benchmarks/reproduce/transfer_tables.py --table 3.1 --seeds 0-4
    python benchmarks/reproduce/transfer_tables.py --table chen --seeds 0-2
    python benchmarks/reproduce/transfer_tables.py --table 3.4 --steps 2000 --set ft_epochs=20

Budgets: without ``--steps`` a run pre-trains for Chen et al.'s epochs (400 on miniImageNet
and mini -> CUB, 200 on CUB; ``transfer.chen_epochs``), i.e. 960,000 / 2,937,600 / ... steps
of 16 images: days on a CPU, hours on one GPU. ``--dry-run`` prints the plan.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: (label, learner id, overrides) per table; ``augment`` where the source trains with it.
ROWS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "3.1": [("TrainFromScratch", "train-from-scratch", {}), ("Finetuning", "baseline", {}),
            ("Baseline++", "baseline-pp", {})],
    "chen": [("Baseline", "baseline", {"augment": True}), ("Baseline++", "baseline-pp", {"augment": True})],
}
ROWS["3.4"] = ROWS["3.1"]
ENVS: dict[str, list[str]] = {
    "3.1": ["mini-imagenet-5w1s", "mini-imagenet-5w5s", "cub-5w1s", "cub-5w5s"],
    "3.4": ["mini-imagenet-to-cub-5w1s", "mini-imagenet-to-cub-5w5s", "cub-to-mini-imagenet-5w1s",
            "cub-to-mini-imagenet-5w5s"],
    "chen": ["mini-imagenet-5w1s", "mini-imagenet-5w5s", "cub-5w1s", "cub-5w5s", "mini-imagenet-to-cub-5w5s"],
}


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Median and a distribution-free CI from order statistics (binomial, coverage >= level)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    best = (0, n - 1)
    for lo in range(n // 2 + 1):
        hi = n - 1 - lo
        cover = sum(math.comb(n, k) for k in range(lo + 1, hi + 1)) / 2**n
        if cover >= level:
            best = (lo, hi)
    return float(np.median(x)), float(x[best[0]]), float(x[best[1]])


def parse_sets(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def build_env(env_id: str, args: argparse.Namespace) -> Any:
    """The env (``eval_tasks`` / ``queries`` overridden when given), or None when its data is absent."""
    import metabench
    from metabench.errors import DataError

    spec = metabench.spec(env_id)
    if args.eval_tasks:
        spec = spec.replace(eval_tasks=args.eval_tasks)
    kwargs: dict[str, Any] = {}
    if args.root:
        kwargs["root"] = args.root
    if args.queries:
        kwargs["queries"] = args.queries
    try:
        return metabench.make(spec, **kwargs)
    except DataError as e:
        print(f"-- skip {env_id}: {e}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", choices=sorted(ROWS), action="append", help="3.1, 3.4 or chen (repeatable; default all)")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--steps", type=int, default=None, help="pre-training steps (default: Chen et al.'s epochs)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="learner override for every row")
    p.add_argument("--out", default="leaderboard")
    p.add_argument("--root", default=None, help="data root (default $METABENCH_DATA)")
    p.add_argument("--eval-tasks", type=int, default=0, help="frozen test tasks (0: the env's 600; smoke tests)")
    p.add_argument("--queries", type=int, default=0, help="queries per class (0: the env's 15; smoke tests)")
    p.add_argument("--env", action="append", help="only these env ids of the tables (repeatable)")
    p.add_argument("--learner", action="append", help="only these learner ids (repeatable)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    from metabench.harness import run
    from metabench.leaderboard.published import references

    common = parse_sets(args.set)
    summary: dict[str, Any] = {"tables": {}, "seeds": seeds_of(args.seeds), "steps": args.steps, "overrides": common}
    for table in args.table or sorted(ROWS):
        rows: list[dict[str, Any]] = []
        for env_id in ENVS[table]:
            if args.env and env_id not in args.env:
                continue
            env = None if args.dry_run else build_env(env_id, args)
            if env is None and not args.dry_run:
                continue
            for label, lid, overrides in ROWS[table]:
                if args.learner and lid not in args.learner:
                    continue
                ov = {**overrides, **common}
                values = []
                for seed in summary["seeds"]:
                    print(f"== table {table} {env_id} {label} ({lid} {ov}) seed {seed}", flush=True)
                    if args.dry_run:
                        continue
                    res = run(env, lid, steps=args.steps, seed=seed, out_dir=args.out, overrides=ov,
                              progress=not args.no_progress)
                    values.append(float(res.metric["mean"]))
                row: dict[str, Any] = {"env": env_id, "row": label, "learner": lid, "overrides": ov, "values": values,
                                       "published": [r.__dict__ for r in references(env_id, lid)]}
                if values:
                    row["median"], row["ci_lo"], row["ci_hi"] = median_ci(values)
                rows.append(row)
        summary["tables"][table] = rows
    if not args.dry_run:
        out = Path(args.out) / "transfer_tables.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
        print(f"summary: {out}")
    return summary


if __name__ == "__main__":
    main()
