"""Benchmark plans: ``metabench bench [--quick]`` runs them and writes leaderboard results.

The quick plan is sized for a few minutes on 2 CPU cores: sinusoid regression always,
real Omniglot (the lite variant, background small1+small2) when ``$METABENCH_DATA`` has it.
Learners that are not registered, and envs whose data is missing, are skipped with a message.
Step counts are short: the quick plan checks that the whole pipeline works on real data and
gives a first number, it does not reproduce the papers' accuracies.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metabench.errors import DataError, MetabenchError, UnknownIdError


@dataclasses.dataclass(frozen=True)
class BenchItem:
    env: str
    learner: str
    steps: int
    val_every: int = 100
    val_tasks: int = 100
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_batch: int = 25


#: MAML on Omniglot is not in the quick plan: on CPU its 600-task evaluation alone (3 inner
#: steps of a Conv-4 per task) takes minutes; it is in FULL.
QUICK: tuple[BenchItem, ...] = (
    BenchItem("sinusoid-5s", "maml", steps=3000, val_every=500, val_tasks=100),
    BenchItem("omniglot-lite-5w1s", "protonet", steps=300, val_every=100, val_tasks=50),
)

FULL: tuple[BenchItem, ...] = (
    BenchItem("sinusoid-5s", "maml", steps=20000, val_every=1000),
    BenchItem("sinusoid-10s", "maml", steps=20000, val_every=1000),
    BenchItem("omniglot-lite-5w1s", "protonet", steps=5000, val_every=500),
    BenchItem("omniglot-lite-5w5s", "protonet", steps=5000, val_every=500),
    BenchItem("omniglot-lite-5w1s", "maml", steps=5000, val_every=500),
    BenchItem("omniglot-5w1s", "protonet", steps=20000, val_every=1000),
    BenchItem("omniglot-5w1s", "maml", steps=20000, val_every=1000),
)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_bench(
    out_dir: str | Path = "leaderboard",
    *,
    quick: bool = True,
    seed: int = 0,
    progress: bool = True,
    only: Sequence[str] | None = None,
    plan: Sequence[BenchItem] | None = None,
    regenerate_table: bool = True,
) -> list[dict[str, Any]]:
    """Run ``plan`` (QUICK or FULL by default); returns the result records written.

    Raises ``MetabenchError`` at the end if any run failed (the others still ran).
    """
    import metabench
    from metabench.harness.train import run
    from metabench.learner import learner_registry

    items = list(plan if plan is not None else (QUICK if quick else FULL))
    if only:
        items = [i for i in items if i.learner in only]
    envs: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    failures: list[str] = []
    for item in items:
        label = f"{item.env} x {item.learner}"
        try:
            learner_registry.resolve(item.learner)
        except UnknownIdError:
            _say(f"skip {label}: learner {item.learner!r} is not registered yet")
            continue
        if item.env not in envs:
            try:
                envs[item.env] = metabench.make(item.env)
            except (DataError, ModuleNotFoundError) as e:
                envs[item.env] = e
        env = envs[item.env]
        if isinstance(env, BaseException):
            _say(f"skip {label}: {type(env).__name__}: {env} (see `metabench data status`)")
            continue
        _say(f"run  {label}: {item.steps} steps, seed {seed}")
        try:
            result = run(env, item.learner, steps=item.steps, seed=seed, out_dir=out_dir, val_every=item.val_every,
                         val_tasks=item.val_tasks, overrides=item.overrides, eval_batch=item.eval_batch,
                         progress=progress)
        except MetabenchError as e:
            _say(f"FAIL {label}: {e}")
            failures.append(label)
            continue
        m = result.metric
        _say(f"done {label}: test {m['name']} {m['mean']:.4f} ± {m['ci95']:.4f} ({m['n_tasks']} tasks), "
             f"train {result.record['train']['wall_time_s']:.0f} s, eval {result.record['eval']['wall_time_s']:.0f} s "
             f"-> {result.path}")
        records.append(result.record)
    if regenerate_table:
        from metabench.leaderboard import regenerate

        _say(f"table: {regenerate(out_dir)}")
    if failures:
        raise MetabenchError(f"{len(failures)} benchmark run(s) failed: {', '.join(failures)}")
    return records
