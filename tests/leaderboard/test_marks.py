"""The *vs best* marks: a top row that nothing could be tested against is not called best."""

from __future__ import annotations

from typing import Any

import numpy as np

from metabench.leaderboard.front import _mark_cell
from metabench.leaderboard.summary import LearnerRow, mark_ties


def _record(mean: float, seed: int) -> dict[str, Any]:
    return {"metrics": [{"mean": mean, "higher_is_better": True}], "seed": seed, "env": {"eval_hash": "e"}}


def test_single_seed_rows_without_per_task_values_leave_the_top_row_untested() -> None:
    rows = [LearnerRow("a", None, [_record(0.5, 0)], 0), LearnerRow("b", None, [_record(0.2, 0)], 0)]
    mark_ties(rows, np.random.default_rng(0))
    assert [r.mark for r in rows] == ["top", ""]
    assert _mark_cell(rows[0]) == "highest mean, untested" and _mark_cell(rows[1]) == "not tested"


def test_a_testable_comparison_keeps_best() -> None:
    rows = [LearnerRow("a", None, [_record(0.5, 0), _record(0.52, 1), _record(0.51, 2)], 0),
            LearnerRow("b", None, [_record(0.2, 0), _record(0.21, 1), _record(0.19, 2)], 0)]
    mark_ties(rows, np.random.default_rng(0))
    assert rows[0].mark == "best" and rows[1].mark == "worse" and rows[1].test == "seeds"


def test_a_rows_interval_does_not_depend_on_the_other_rows() -> None:
    """Each row draws its bootstrap from its own generator (env, learner): adding a learner
    leaves the other rows' intervals exactly as they were."""
    from metabench.leaderboard.canonical import Canonical
    from metabench.leaderboard.summary import summarize_env

    def rows_for(lid: str, base: float) -> list[tuple[Any, dict[str, Any]]]:
        return [(None, {"learner": {"id": lid}, "config_hash": lid, "seed": s, "env": {"eval_hash": "e"},
                        "metrics": [{"mean": base + 0.01 * s, "higher_is_better": True}]}) for s in range(4)]

    def canon(lid: str) -> Canonical:
        return Canonical("env", lid, lid, 1, 0, 0, {}, {}, "harness default")

    one = summarize_env("env", rows_for("b", 0.3), {("env", "b"): canon("b")}, ["b"])
    two = summarize_env("env", rows_for("a", 0.5) + rows_for("b", 0.3),
                        {("env", "a"): canon("a"), ("env", "b"): canon("b")}, ["a", "b"])
    b1, b2 = one[0], next(r for r in two if r.learner == "b")
    assert b1.iqm is not None and b1.iqm.lo < b1.iqm.hi
    assert b1.iqm == b2.iqm
