"""Seed 003 Tables 3.1 and 3.4 end to end: every learner of the tables on miniImageNet, CUB and
both cross-domain directions, 1 and 5 shot, through the harness, beside the published values.

    python benchmarks/reproduce/seed003_tables.py --root DATA [--seeds 0-4] [--envs ...] [--learners ...]

Protocol (seed 003 §3.5.3): Chen et al.'s setup, the Conv-4 of Snell et al. (max-pooling on
84x84 RGB), 5 runs per learner with different initialisations, the median over runs with a
95 % CI (here the order-statistic interval, ``metabench.leaderboard.stats.median_ci``), each
learner with its own defaults (``metabench list learners``). Every run is a resumable
harness run (``--resume`` semantics, checkpoints every quarter) writing its JSON to
``<out>/results``; the summary (ours beside ``metabench.leaderboard.published``) goes to
``--summary``. Missing data stops before any training with the files to provide. Learner
ids that are not registered are reported and skipped. ``--eval-tasks``, ``--steps`` and
``--set`` exist for smoke runs on small fixtures; a reproduction leaves them unset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from metabench.leaderboard.stats import median_ci

ENVS = [f"{d}-5w{k}s" for d in ("mini-imagenet", "cub", "mini-imagenet-to-cub", "cub-to-mini-imagenet") for k in (1, 5)]
LEARNERS = ["train-from-scratch", "baseline", "baseline-pp", "meta-lstm", "meta-lstm-plus", "maml-fo", "maml",
            "turtle-fo", "turtle"]


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for kv in items:
        if "=" not in kv:
            raise SystemExit(f"expected KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        out[k] = v
    return out


def build_envs(ids: list[str], root: str | None, eval_tasks: int | None, env_set: dict[str, str]) -> dict[str, Any]:
    import metabench
    from metabench.errors import DataError

    envs, missing = {}, []
    for env_id in ids:
        spec = metabench.spec(env_id)
        if eval_tasks:
            spec = spec.replace(eval_tasks=eval_tasks)
        kw: dict[str, Any] = {k: int(v) if v.isdigit() else v for k, v in env_set.items()}
        if root:
            kw["root"] = root
        try:
            envs[env_id] = metabench.make(spec, **kw)
        except DataError as e:
            missing.append(f"{env_id}: {e}")
    if missing:
        print("data missing, nothing was run:\n  " + "\n  ".join(missing), file=sys.stderr)
        raise SystemExit(2)
    return envs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import metabench
    from metabench.atomic import atomic_write_json
    from metabench.harness import run
    from metabench.learner import learner_registry
    from metabench.leaderboard.published import references

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data root (default: $METABENCH_DATA, then ~/.local/share/metabench)")
    ap.add_argument("--envs", default=",".join(ENVS))
    ap.add_argument("--learners", default=",".join(LEARNERS))
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--steps", type=int, default=None, help="meta-training steps (default: each learner's own)")
    ap.add_argument("--val-every", type=int, default=None)
    ap.add_argument("--val-tasks", type=int, default=100)
    ap.add_argument("--eval-tasks", type=int, default=None, help="smoke runs only: fewer frozen test tasks")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="learner option (smoke runs)")
    ap.add_argument("--env-set", action="append", default=[], metavar="KEY=VALUE", help="env option (smoke runs)")
    ap.add_argument("--out", default="leaderboard")
    ap.add_argument("--summary", default="benchmarks/results/seed003_tables.json")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    learners = [lid for lid in args.learners.split(",") if lid]
    unknown = [lid for lid in learners if lid not in learner_registry]
    if unknown:
        print(f"not registered, skipped: {', '.join(unknown)}", file=sys.stderr)
    learners = [lid for lid in learners if lid not in unknown]
    envs = build_envs([e for e in args.envs.split(",") if e], args.root, args.eval_tasks, pairs(args.env_set))
    overrides = pairs(args.set)
    rows: list[dict[str, Any]] = []
    for env_id, env in envs.items():
        for lid in learners:
            fields = {f for f in metabench.learner.learner_class(lid).Config.__dataclass_fields__}
            kw = {k: v for k, v in overrides.items() if k in fields}
            finals, names = [], []
            for seed in seeds_of(args.seeds):
                print(f"== {env_id} {lid} seed {seed}", flush=True)
                steps = args.steps
                res = run(env, lid, steps=steps, seed=seed, out_dir=args.out, val_every=args.val_every,
                          val_tasks=args.val_tasks, checkpoint_every=max(1, (steps or 1000) // 4), resume=True,
                          overrides=kw, progress=not args.no_progress)
                finals.append(float(res.metric["mean"]))
                names.append(res.record["name"])
            med, lo, hi = median_ci(finals)
            refs = [{"value": r.value, "ci95": r.ci95, "source": r.source} for r in references(env_id, lid)]
            rows.append({"env": env_id, "learner": lid, "runs": len(finals), "median": med, "ci95": [lo, hi],
                         "finals": finals, "results": names, "published": refs})
            pub = ", ".join(f"{100 * r['value']:.0f} ({r['source'].split(', ')[-1]})" for r in refs) or "-"
            print(f"   {env_id:<28} {lid:<18} median {100 * med:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}]  published {pub}")
    atomic_write_json(Path(args.summary), {"argv": sys.argv[1:] if argv is None else argv, "rows": rows})
    return {"rows": rows}


if __name__ == "__main__":
    main()
