"""``metabench run --learner ID --help``: the run options, then every option of that learner.

argparse prints ``--help`` before it has read the other flags, so ``main`` asks
``requested_learner`` first whether a help request names a learner.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def requested_learner(argv: Sequence[str]) -> str | None:
    """The ``ID`` of ``run ... --learner ID ... -h|--help`` (either order), else None."""
    args = list(argv)
    if not args or args[0] != "run" or not ({"-h", "--help"} & set(args)):
        return None
    for i, a in enumerate(args):
        if a == "--learner" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--learner="):
            return a.partition("=")[2]
    return None


def run_help(parser: argparse.ArgumentParser, learner_id: str) -> str:
    """The ``run`` subcommand's help followed by ``learner_help(learner_id)``."""
    from metabench.learner import learner_help

    text = learner_help(learner_id)  # UnknownIdError (did-you-mean) before anything prints
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return f"{subparsers.choices['run'].format_help()}\nlearner {text}\n"
