"""The ``metabench`` command line (argparse).

    metabench list [envs|learners [ID]]
    metabench run --env ID --learner ID [--steps N --seed S --out DIR --set k=v ... --env-set k=v ...
                  --val-every N --val-tasks N --checkpoint-every N --resume --no-progress
                  --log-dir DIR [--tensorboard]]
    metabench run --learner ID --help   (the run options and every option of learner ID)
    metabench leaderboard [--dir leaderboard]
    metabench data status [--root DIR]
    metabench data prepare ID [--root DIR] [--download]
    metabench bench [--quick] [--out DIR]

Errors that metabench raises on purpose print one line (``metabench: error: ...``) and
exit with status 1; Ctrl-C exits with 130 after checkpointing.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from typing import Any

from metabench.errors import ConfigError, MetabenchError


def parse_assignments(items: Sequence[str] | None, flag: str, *, literal: bool) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: v}``; with ``literal`` values are Python literals when they parse."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value, got {item!r}")
        if literal:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
        out[key.strip()] = value
    return out


# -- commands ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    import metabench

    if args.what in (None, "envs"):
        print("Environments:")
        metabench.pprint_registry()
    if args.id is not None:
        if args.what != "learners":
            raise ConfigError("metabench list ID lists a learner's options: metabench list learners ID")
        from metabench.learner import learner_help

        print(learner_help(args.id))
        return 0
    if args.what in (None, "learners"):
        if args.what is None:
            print()
        print("Learners:")
        metabench.pprint_learners()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from metabench.harness import RunConfig, run_config

    cfg = RunConfig(
        env=args.env, learner=args.learner, steps=args.steps, seed=args.seed, out_dir=args.out,
        val_every=args.val_every, val_tasks=args.val_tasks, checkpoint_every=args.checkpoint_every,
        eval_batch=args.eval_batch, resume=args.resume,
        overrides=parse_assignments(args.set, "--set", literal=False),
        env_overrides=parse_assignments(args.env_set, "--env-set", literal=True),
        train_env_overrides=parse_assignments(args.train_env_set, "--train-env-set", literal=True),
        progress=not args.no_progress, log_dir=args.log_dir, tensorboard=args.tensorboard,
    )
    result = run_config(cfg)
    m = result.metric
    print(f"{result.record['env']['id']} {result.record['learner']['id']} seed {cfg.seed}: "
          f"test {m['name']} {m['mean']:.4f} ± {m['ci95']:.4f} over {m['n_tasks']} tasks")
    print(f"result: {result.path}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from metabench.leaderboard import regenerate

    skipped: list[str] = []  # bad result files: named, left out, the rest rendered (exit status 1)
    path = regenerate(args.dir, plots=not args.no_plots, report=skipped.append)
    for line in skipped:
        print(line, file=sys.stderr)
    print(f"wrote {path} and the experiments pages")
    if skipped:
        raise MetabenchError(f"{len(skipped)} result file(s) skipped (named above and on the page); fix or delete them")
    return 0


def _data_status_module() -> Any:
    try:
        import metabench.data.status as status
    except ModuleNotFoundError as e:  # the data layer is optional at this point of the build
        raise MetabenchError(f"the data layer is not available in this install ({e})") from None
    return status


def cmd_data_status(args: argparse.Namespace) -> int:
    status = _data_status_module()
    print(status.format_status(status.dataset_status(args.root)))
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    status = _data_status_module()
    kwargs = {"download": True} if args.download else {}
    for row in status.prepare(args.id, args.root, **kwargs):
        print(f"prepared {row['env_id']}: data hash {row['data_hash']}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from metabench.harness.bench import run_bench

    run_bench(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress,
              only=args.only, regenerate_table=not args.no_table)
    return 0


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metabench", description="Meta-learning benchmark suite on JAX.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list registered envs and/or learners")
    s.add_argument("what", nargs="?", choices=["envs", "learners"])
    s.add_argument("id", nargs="?", help="a learner id: list its options (type, default, doc)")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("run", help="meta-train a learner on an env and evaluate it on the frozen test tasks")
    s.add_argument("--env", required=True, help="env id, e.g. sinusoid-5s, omniglot-lite-5w1s")
    s.add_argument("--learner", required=True,
                   help="learner id, e.g. protonet, maml (with --help: every option of that learner)")
    s.add_argument("--steps", type=int, default=None,
                   help="meta-training steps (default: the learner's published budget for the env where it has "
                        "one, e.g. maml on point-nav: 100 as Finn et al.; else 1000)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="leaderboard",
                   help="output root: results in OUT/results, checkpoints in OUT/runs (default leaderboard)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="learner config override (repeatable)")
    s.add_argument("--env-set", action="append", metavar="KEY=VALUE", help="env option override (repeatable)")
    s.add_argument("--train-env-set", action="append", metavar="KEY=VALUE",
                   help="env option for the training tasks only, e.g. ways=20 (train 20-way, test at the env's ways)")
    s.add_argument("--val-every", type=int, default=None,
                   help="validate every N steps; 0 disables (default: the learner's choice for the env where it "
                        "has one, e.g. maml on point-nav: 10; else 100)")
    s.add_argument("--val-tasks", type=int, default=100, help="frozen val tasks to validate on (default 100)")
    s.add_argument("--checkpoint-every", type=int, default=0,
                   help="checkpoint every N steps; 0: only at the end and on Ctrl-C (default 0)")
    s.add_argument("--eval-batch", type=int, default=50, help="tasks per evaluation batch (default 50)")
    s.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--log-dir", default=None, metavar="DIR",
                   help="write metrics as JSON lines per step and validation to DIR/<run name>/metrics.jsonl")
    s.add_argument("--tensorboard", action="store_true",
                   help="with --log-dir: TensorBoard event files there too (pip install 'metabench[tensorboard]')")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("leaderboard", help="validate results and regenerate the leaderboard README and plots")
    s.add_argument("--dir", default="leaderboard", help="leaderboard directory (default leaderboard)")
    s.add_argument("--no-plots", action="store_true")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser("data", help="dataset status and preparation")
    dsub = s.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    d = dsub.add_parser("status", help="which datasets are present under the data root")
    d.add_argument("--root", default=None, help="data root (default $METABENCH_DATA)")
    d.set_defaults(func=cmd_data_status)
    d = dsub.add_parser("prepare", help="build the preprocessed cache of a dataset or env id")
    d.add_argument("id", help="dataset name or env id")
    d.add_argument("--root", default=None, help="data root (default $METABENCH_DATA)")
    d.add_argument("--download", action="store_true", help="download missing files first (verified)")
    d.set_defaults(func=cmd_data_prepare)

    s = sub.add_parser("bench", help="run the benchmark plan and write leaderboard results and table")
    s.add_argument("--quick", action="store_true", help="the short plan (a few minutes on 2 CPU cores)")
    s.add_argument("--out", default="leaderboard", help="leaderboard directory (default leaderboard)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--only", action="append", metavar="LEARNER", help="run only these learners (repeatable)")
    s.add_argument("--no-table", action="store_true", help="do not regenerate README.md and plots")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_bench)

    from metabench.leaderboard.commands import add_commands  # compare, canonical (issue 27)

    add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``metabench`` console script; returns the exit status."""
    from metabench.harness import RunInterrupted

    from metabench.cli_help import requested_learner, run_help

    argv = list(sys.argv[1:] if argv is None else argv)
    learner_id = requested_learner(argv)  # `run --learner ID --help`: the learner's options too
    try:
        if learner_id is not None:
            print(run_help(build_parser(), learner_id), end="")
            return 0
    except MetabenchError as e:
        print(f"metabench: error: {e}", file=sys.stderr)
        return 1
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RunInterrupted as e:
        print(f"metabench: {e}", file=sys.stderr)
        return 130
    except MetabenchError as e:
        print(f"metabench: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # an optional extra (the entry point's message says which)
        print(f"metabench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metabench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
