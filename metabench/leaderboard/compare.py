"""``metabench compare A B``: the paired difference of two results on their shared test tasks.

A side is a result file, or a learner id with ``--env`` (its canonical runs there, averaged
over seeds task by task). Refused, with the reason: sides on different envs, eval sets
(eval hashes) or metrics, and results without per-task values (schema 1.0: written before
the harness stored them; rerun to compare).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metabench.errors import MetabenchError
from metabench.harness.per_task import decode_per_task
from metabench.leaderboard.paired import Paired, paired_compare
from metabench.leaderboard.store import load_result, scan_results

#: seed of the sign-flip permutation draws
COMPARE_SEED = 0


class CompareError(MetabenchError):
    """Two results that cannot be compared task by task (the message says why)."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a label and its records (several seeds of one configuration)."""

    label: str
    records: tuple[dict[str, Any], ...]

    def per_task(self) -> np.ndarray:
        """Per-task values averaged over the records' seeds (``CompareError`` where any lacks them)."""
        vals = []
        for r in self.records:
            v = decode_per_task(r)
            if v is None:
                raise CompareError(
                    f"{self.label}: {r['name']} has no per-task values (schema {r.get('schema_version')}: written "
                    "before results stored the metric of every test task), so it cannot be compared task by task; "
                    f"rerun it (metabench run --env {r['env']['id']} --learner {r['learner']['id']} "
                    f"--seed {r['seed']} ...) to get them")
            vals.append(v)
        if len({v.size for v in vals}) != 1:
            raise CompareError(f"{self.label}: its seeds have per-task values of different lengths")
        return np.mean(vals, axis=0)


def side_from(arg: str, env: str | None, results_dir: str | Path, config: str | None = None) -> Side:
    """A result file (``*.json`` that exists), else learner ``arg``'s canonical runs on ``env``
    (``config``: the first hex digits of another config hash of that learner)."""
    path = Path(arg)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise CompareError(f"{arg}: no such result file")
        return Side(path.name, (load_result(path),))
    if env is None:
        raise CompareError(f"{arg!r} is not a result file; to compare learner ids pass --env ENV")
    import metabench
    from metabench.leaderboard.canonical import canonical_run
    from metabench.learner import learner_registry

    env_id = metabench.spec(env).id
    lid = learner_registry.resolve(arg)
    rows, _ = scan_results(results_dir)
    mine = [r for _, r in rows if r["env"]["id"] == env_id and r["learner"]["id"] == lid]
    if config is None:
        chash = canonical_run(metabench.make(env_id), lid).config_hash
        what = "canonical run"
    else:
        hashes = {r["config_hash"] for r in mine if r["config_hash"].startswith(config)}
        if len(hashes) != 1:
            raise CompareError(f"{lid} on {env_id}: {len(hashes)} configurations start with {config!r} in {results_dir}")
        chash, what = hashes.pop(), "configuration"
    by_seed: dict[int, dict[str, Any]] = {}
    for r in mine:
        if r["config_hash"] == chash:
            by_seed.setdefault(int(r["seed"]), r)
    if not by_seed:
        raise CompareError(f"no {what} ({chash[:8]}) of {lid} on {env_id} in {results_dir} "
                           f"({len(mine)} other results: see experiments/{env_id}.md, or pass result files)")
    recs = tuple(by_seed[s] for s in sorted(by_seed))
    return Side(f"{lid} ({chash[:8]}, {len(recs)} seed{'s' if len(recs) != 1 else ''})", recs)


def check_comparable(a: Side, b: Side) -> None:
    """``CompareError`` unless every record of both sides shares the env, eval set and metric."""
    recs = [*a.records, *b.records]
    for what, get in (("envs", lambda r: r["env"]["id"]),
                      ("eval sets (eval hashes)", lambda r: r["env"]["eval_hash"]),
                      ("metrics", lambda r: (r["metrics"][0]["name"], r["metrics"][0].get("split", "test")))):
        seen = {str(get(r)) for r in recs}
        if len(seen) > 1:
            raise CompareError(f"cannot compare: the results are on different {what}: {', '.join(sorted(seen))}")


def compare(a: Side, b: Side, *, n_perm: int = 10_000) -> Paired:
    """The paired comparison of ``a`` and ``b`` (``a - b``) after ``check_comparable``."""
    check_comparable(a, b)
    va, vb = a.per_task(), b.per_task()
    if va.size != vb.size:
        raise CompareError(f"cannot compare: {va.size} vs {vb.size} per-task values on the same eval set")
    return paired_compare(va, vb, np.random.default_rng(COMPARE_SEED), n_perm=n_perm)


def report(a: Side, b: Side, p: Paired) -> list[str]:
    """The lines ``metabench compare`` prints."""
    r0 = a.records[0]
    m = r0["metrics"][0]
    metric, higher = m["name"], bool(m["higher_is_better"])
    scale, unit = (100.0, " %") if metric == "accuracy" else (1.0, "")

    def num(v: float) -> str:
        return f"{scale * v:+.4g}{unit}"

    if p.lo > 0 or p.hi < 0:
        better = a.label if (p.diff > 0) == higher else b.label
        verdict = f"{better} is better ({'higher' if higher else 'lower'} {metric} is better)"
    else:
        verdict = "no difference at this level (the CI contains 0)"
    return [
        f"env {r0['env']['id']}, test {metric}, {p.n} shared test tasks (eval set {r0['env']['eval_hash'][:12]})",
        f"A: {a.label}: mean {num(p.mean_a).lstrip('+')}",
        f"B: {b.label}: mean {num(p.mean_b).lstrip('+')}",
        f"paired difference A - B: {num(p.diff)}, {100 * p.level:.0f} % CI [{num(p.lo)}, {num(p.hi)}] (Student t, df {p.n - 1})",
        f"paired t-test: t = {p.t:.3f}, p = {p.p_t:.3g}",
        f"sign-flip permutation test: p = {p.p_perm:.3g} ({p.n_perm:,} random sign flips, seed {COMPARE_SEED})",
        verdict,
    ]


def run_compare(a: str, b: str, *, env: str | None, results_dir: str | Path,
                config_a: str | None = None, config_b: str | None = None) -> list[str]:
    """Resolve both sides, compare them and return the report lines (``CompareError`` on refusal)."""
    sa, sb = side_from(a, env, results_dir, config_a), side_from(b, env, results_dir, config_b)
    return report(sa, sb, compare(sa, sb))


__all__: Sequence[str] = ["CompareError", "Side", "check_comparable", "compare", "report", "run_compare", "side_from"]
