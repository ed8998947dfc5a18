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
