"""The ``metabench compare`` and ``metabench canonical`` subcommands (added to the CLI's parser)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from metabench.errors import ConfigError


def cmd_compare(args: argparse.Namespace) -> int:
    from metabench.leaderboard.compare import run_compare

    lines = run_compare(args.a, args.b, env=args.env, results_dir=Path(args.dir) / "results",
                        config_a=args.config_a, config_b=args.config_b)
    print("\n".join(lines))
    return 0


def cmd_canonical(args: argparse.Namespace) -> int:
    from metabench.leaderboard.canonical import compute_canonical
    from metabench.leaderboard.plan import PLAN_ENVS, SEEDS, plan_runs

    table, problems = compute_canonical(args.env or PLAN_ENVS)
    if args.learner:
        table = {k: v for k, v in table.items() if k[1] in set(args.learner)}
    for what, why in sorted(problems.items()):
        print(f"skipped {what}: {why}", file=sys.stderr)
    runs = plan_runs(table, Path(args.out) / "results", args.seed if args.seed is not None else SEEDS)
    todo = [r for r in runs if not r.present]
    for r in runs:
        c = r.canonical
        every = args.checkpoint_every if args.checkpoint_every is not None else max(1, c.steps // 10)
        print(f"{'present' if r.present else 'missing':8} {c.env:24} {c.learner:20} seed {r.seed}  "
              f"{c.steps:>6} steps ({c.budget})  {r.name}")
        if not r.present and not args.run:
            print(f"         {shlex.join(r.command(args.out, every))}")
    print(f"{len(runs)} planned runs: {len(runs) - len(todo)} present, {len(todo)} missing")
    if not args.run or not todo:
        return 0
    from metabench.harness import provenance

    code = provenance.code_version()
    if code.get("git_dirty") and not args.allow_dirty:
        raise ConfigError("the checkout has uncommitted changes; canonical runs come from a clean tree "
                          "(commit or pass --allow-dirty)")
    failed = []
    for r in todo:
        every = args.checkpoint_every if args.checkpoint_every is not None else max(1, r.canonical.steps // 10)
        cmd = r.command(args.out, every)
        print(f"running {r.name}: {shlex.join(cmd)}", flush=True)
        rc = subprocess.run([sys.executable, "-m", "metabench.cli", *cmd[1:]]).returncode
        if rc == 130:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            return 130
        if rc != 0:
            failed.append(r.name)
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"done; regenerate the pages with: metabench leaderboard --dir {args.out}")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``compare`` and ``canonical`` to the CLI's subparsers."""
    s = sub.add_parser("compare", help="paired comparison of two results on their shared test tasks")
    s.add_argument("a", help="a result JSON file, or a learner id (with --env: its canonical runs)")
    s.add_argument("b", help="a result JSON file, or a learner id (with --env)")
    s.add_argument("--env", default=None, help="env id for learner-id arguments")
    s.add_argument("--config-a", default=None, metavar="HASH", help="config hash prefix of A instead of its canonical run")
    s.add_argument("--config-b", default=None, metavar="HASH", help="config hash prefix of B instead of its canonical run")
    s.add_argument("--dir", default="leaderboard", help="leaderboard directory for learner ids (default leaderboard)")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("canonical", help="list (and with --run, run the missing of) the canonical runs")
    s.add_argument("--out", default="leaderboard", help="leaderboard directory (default leaderboard)")
    s.add_argument("--env", action="append", help="only this env (repeatable; default: the plan's envs)")
    s.add_argument("--learner", action="append", help="only this learner (repeatable)")
    s.add_argument("--seed", action="append", type=int, help="only this seed (repeatable; default 0 1 2)")
    s.add_argument("--checkpoint-every", type=int, default=None,
                   help="checkpoint interval of the runs (default: a tenth of each run's steps), so a killed run resumes")
    s.add_argument("--run", action="store_true", help="run the missing ones, one after another (resumable)")
    s.add_argument("--allow-dirty", action="store_true", help="run from a checkout with uncommitted changes")
    s.set_defaults(func=cmd_canonical)
