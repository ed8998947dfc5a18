"""One learner's canonical row: its canonical results over seeds and the statistics shown.

``summarize_env`` turns one env's results and its canonical table into rows in learner-table
order: mean and sd over seeds, the IQM with its stratified bootstrap interval
(``metabench.leaderboard.iqm``), the mean adaptation curve, and the mark against the best
row (the paired test of ``metabench.leaderboard.paired`` on the seed-averaged per-task
values; Welch over seed means where a result has no per-task values).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metabench.harness.per_task import decode_per_task
from metabench.leaderboard.canonical import Canonical
from metabench.leaderboard.iqm import Interval, stratified_bootstrap_iqm
from metabench.leaderboard.paired import paired_compare
from metabench.leaderboard.welch import welch_p

Row = tuple[Path, dict[str, Any]]
#: seed of the bootstrap and permutation draws (the page is the same on every regeneration)
STATS_SEED = 0


def row_rng(env_id: str, learner: str) -> np.random.Generator:
    """The bootstrap generator of one row: seeded by ``STATS_SEED``, the env and the learner
    only, so a row's interval does not change when other learners' rows come or go."""
    return np.random.default_rng([STATS_SEED, zlib.crc32(env_id.encode()), zlib.crc32(learner.encode())])
#: p-value at or above which a row counts as tied with the best
TIE_P = 0.05


@dataclass
class LearnerRow:
    """``learner``'s row on one env; ``records`` empty when it has no canonical run."""

    learner: str
    canonical: Canonical | None
    records: list[dict[str, Any]]
    others: int  # this learner's other results on the env (the experiments page)
    iqm: Interval | None = None
    iqm_per_task: bool = False  # IQM over seeds x test tasks (else over seed means)
    mark: str = ""  # "best", "tied", "worse", "top" (highest, nothing testable against it) or "" (not tested)
    p: float | None = None
    test: str = ""  # "paired" or "seeds"

    @property
    def means(self) -> np.ndarray:
        return np.array([r["metrics"][0]["mean"] for r in self.records], np.float64)

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.records]

    def per_task(self) -> np.ndarray | None:
        """``float[seeds, tasks]`` when every seed has per-task values of one length, else None."""
        vals = [decode_per_task(r) for r in self.records]
        if not vals or any(v is None for v in vals) or len({v.size for v in vals}) != 1:  # type: ignore[union-attr]
            return None
        out = np.stack(vals)  # type: ignore[arg-type]
        return out if np.all(np.isfinite(out)) else None

    def curve(self) -> tuple[list[int], np.ndarray] | None:
        """``(x, mean over seeds)`` of the first curve, if every seed has one with the same ``x``."""
        curves = [(r.get("curves") or [None])[0] for r in self.records]
        if not curves or any(c is None for c in curves) or any(c["x"] != curves[0]["x"] for c in curves):
            return None
        if not curves[0]["x"] or any(len(c["mean"]) != len(c["x"]) for c in curves):
            return None
        return list(curves[0]["x"]), np.mean([c["mean"] for c in curves], axis=0)


def canonical_records(rows: Sequence[Row], canon: Canonical) -> list[dict[str, Any]]:
    """The records of ``rows`` that are ``canon``'s runs, one per seed (the first file of a seed), by seed."""
    by_seed: dict[int, dict[str, Any]] = {}
    for _, r in rows:
        if r["learner"]["id"] == canon.learner and r["config_hash"] == canon.config_hash:
            by_seed.setdefault(int(r["seed"]), r)
    return [by_seed[s] for s in sorted(by_seed)]


def summarize_env(env_id: str, rows: Sequence[Row], canonical: Mapping[tuple[str, str], Canonical],
                  learners: Sequence[str]) -> list[LearnerRow]:
    """Rows for ``learners`` (table order) plus any learner with results on ``env_id`` that has
    no canonical settings here (an unregistered one: listed last, never canonical)."""
    out: list[LearnerRow] = []
    ids = list(learners) + sorted({r["learner"]["id"] for _, r in rows} - set(learners))
    for lid in ids:
        canon = canonical.get((env_id, lid))
        recs = canonical_records(rows, canon) if canon else []
        n_all = sum(1 for _, r in rows if r["learner"]["id"] == lid)
        out.append(LearnerRow(lid, canon, recs, n_all - len(recs)))
    for row in out:
        if row.records and np.all(np.isfinite(row.means)):
            pt = row.per_task()
            row.iqm_per_task = pt is not None
            row.iqm = stratified_bootstrap_iqm(pt if pt is not None else row.means[:, None], row_rng(env_id, row.learner))
    mark_ties([r for r in out if r.records and np.all(np.isfinite(r.means))], np.random.default_rng(STATS_SEED))
    return out


def mark_ties(rows: Sequence[LearnerRow], rng: np.random.Generator) -> None:
    """Mark the best row (mean over seeds) and, for every other, tied / worse by the paired
    test over the shared test tasks (Welch over seed means where per-task values are missing)."""
    if not rows:
        return
    higher = bool(rows[0].records[0]["metrics"][0]["higher_is_better"])
    best = max(rows, key=lambda r: r.means.mean() if higher else -r.means.mean())
    best.mark = "best"
    best_pt = best.per_task()
    best_hash = {r["env"]["eval_hash"] for r in best.records}
    for row in rows:
        if row is best:
            continue
        pt = row.per_task()
        same_eval = {r["env"]["eval_hash"] for r in row.records} == best_hash and len(best_hash) == 1
        if pt is not None and best_pt is not None and same_eval and pt.shape[1] == best_pt.shape[1]:
            row.p, row.test = paired_compare(pt.mean(0), best_pt.mean(0), rng, n_perm=0).p_t, "paired"
        else:
            row.p, row.test = welch_p(row.means, best.means), "seeds"
        if row.p is not None:
            row.mark = "tied" if row.p >= TIE_P else "worse"
    if len(rows) > 1 and not any(row.mark for row in rows if row is not best):
        best.mark = "top"  # the highest mean, but no other row could be tested against it
