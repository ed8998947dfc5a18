"""Seed summaries: one configuration trained with several seeds, as one row.

A run's 95 % CI covers the test tasks only; the training seed moves results by as much
again (MAML-RL on point-nav: seed sd 0.7 after 3 steps against a per-run CI of +-0.5 to
1.6), and a published number is usually one seed. So for every configuration (learner id
and config hash: same settings, steps and env) run with two or more seeds the leaderboard
adds a row with the mean over seeds, the seed standard deviation (``ddof = 1``), the
range and, where every run reports one, the mean curve over adaptation steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from metabench.leaderboard.table import Row, code_version, headline, key_config


class SeedSummary(NamedTuple):
    """One configuration over its seeds (``records`` sorted by seed)."""

    learner: str
    config_hash: str
    records: tuple[dict[str, Any], ...]
    means: np.ndarray  # float64[n]: each seed's headline mean

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.records]

    @property
    def mean(self) -> float:
        return float(self.means.mean())

    @property
    def sd(self) -> float:
        return float(self.means.std(ddof=1))

    def curve(self) -> tuple[list[float], np.ndarray] | None:
        """``(x, mean over seeds)`` of the first curve, if every run has one with the same ``x``."""
        curves = [(r.get("curves") or [None])[0] for r in self.records]
        if any(c is None for c in curves) or any(c["x"] != curves[0]["x"] for c in curves):
            return None
        return list(curves[0]["x"]), np.mean([c["mean"] for c in curves], axis=0)


def seed_summaries(rows: Sequence[Row]) -> list[SeedSummary]:
    """The configurations of ``rows`` (one env) with two or more seeds, best mean first.

    A seed run twice (two files cannot share a name, but a hand-copied record could) is
    counted once: the first of them in ``rows``.
    """
    groups: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for _, r in rows:
        groups.setdefault((r["learner"]["id"], r["config_hash"]), {}).setdefault(int(r["seed"]), r)
    out = []
    for (learner, config_hash), by_seed in groups.items():
        if len(by_seed) < 2:
            continue
        records = tuple(by_seed[s] for s in sorted(by_seed))
        means = np.array([headline(r)["mean"] for r in records], np.float64)
        out.append(SeedSummary(learner, config_hash, records, means))
    higher = bool(rows and headline(rows[0][1])["higher_is_better"])
    return sorted(out, key=lambda s: (-s.mean if higher else s.mean, s.learner, s.config_hash))


def _num(record: dict[str, Any], value: float, digits: str = ".4g") -> str:
    return f"{100 * value:.2f} %" if headline(record)["name"] == "accuracy" else f"{value:{digits}}"


def render_seed_table(rows: Sequence[Row]) -> list[str]:
    """Markdown lines of the seed table for one env's rows (none if no configuration has two seeds)."""
    summaries = seed_summaries(rows)
    if not summaries:
        return []
    m = headline(rows[0][1])["name"]
    lines = [
        "Over training seeds (configurations run with two or more; sd = standard deviation "
        "over the seeds' means):",
        "",
        f"| learner | config | key config | steps | seeds | {m}: mean ± sd | range | curve (mean over seeds) | code |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        first = s.records[0]
        curve = s.curve()
        curve_text = " / ".join(_num(first, v) for v in curve[1]) if curve else ""
        codes = ", ".join(dict.fromkeys(code_version(r) for r in s.records))
        lines.append(
            f"| {s.learner} | `{s.config_hash[:8]}` | {key_config(first)} | {first['run']['steps']} | "
            f"{len(s.records)} ({', '.join(map(str, s.seeds))}) | {_num(first, s.mean)} ± {_num(first, s.sd, '.2g')} | "
            f"{_num(first, float(s.means.min()))} .. {_num(first, float(s.means.max()))} | {curve_text} | {codes} |"
        )
    return lines
