"""Published references in the leaderboard: beside an env's rows, or in a section of their own.

Every env id (without version) in ``PUBLISHED_SUPERVISED`` gets a table of its published
numbers, learner by learner, with the source table; where metabench has run the learner on
that env, its best row's value stands beside the published one, else "not run" (registry ids
that are spelt otherwise in the tables, ``baseline-pp`` for Baseline++, go through
``LEARNER_ALIASES``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metabench.leaderboard.published import LEARNER_ALIASES, PUBLISHED_SUPERVISED, Reference

Row = tuple[Path, dict[str, Any]]


def _base(env_id: str) -> str:
    return re.sub(r"-v\d+$", "", env_id)


def _pct(ref: Reference) -> str:
    ci = "" if ref.ci95 is None else f" ± {100 * ref.ci95:.1f}"
    return f"{100 * ref.value:.1f}{ci} %"


def reference_lines(env_id: str, rows: Sequence[Row]) -> list[str]:
    """Markdown lines for ``env_id``'s published references (``[]`` when it has none)."""
    refs = PUBLISHED_SUPERVISED.get(_base(env_id), {})
    if not refs:
        return []
    ours: dict[str, dict[str, Any]] = {}
    for _, r in rows:  # rows are sorted best first; registry ids map to the published names
        lid = r["learner"]["id"]
        ours.setdefault(LEARNER_ALIASES.get(lid, lid), r)
    lines = ["Published references:", "", "| learner | published | statistic | source | metabench (best row) |",
             "|---|---|---|---|---|"]
    for learner, rs in refs.items():
        mine = ours.get(learner)
        if mine is not None:
            m = mine["metrics"][0]
            text = f"{100 * m['mean']:.2f} ± {100 * m['ci95']:.2f} % (seed {mine['seed']}, {mine['run']['steps']} steps)"
        else:
            text = "not run"
        for ref in rs:
            lines.append(f"| {learner} | {_pct(ref)} | {ref.statistic} | {ref.source} | {text} |")
    return lines


def unrun_sections(env_ids_with_rows: Sequence[str]) -> list[str]:
    """A section per referenced env id that has no metabench result yet."""
    have = {_base(e) for e in env_ids_with_rows}
    missing = [e for e in PUBLISHED_SUPERVISED if e not in have]
    if not missing:
        return []
    lines = ["## Published references without a metabench result yet", "",
             "These envs need data this machine does not have (see `metabench data status`); "
             "`benchmarks/reproduce/` has the scripts that run them when it is there.", ""]
    for env in missing:
        lines += [f"### {env}", "", *reference_lines(env, []), ""]
    return lines
