"""Training collapse: detected from the learner's metrics and the validation curve, recorded in the result.

Seed 000 (Table II) reports settings whose accuracy "would collapse to random guessing".
A run is recorded as collapsed when either

* the learner reports it: a ``collapsed`` metric > 0 at the last step (the ES learners latch
  it on the first non-finite fitness or gradient and stop updating; ``collapse_step`` says
  when), or
* a classification run's last validation accuracy is at chance: at most
  ``1 / ways + CHANCE_MARGIN`` (the final parameters guess; the test metric, computed on the
  best validated parameters, may still be above chance).

The record is ``{"detected": bool, "step": int | None, "reasons": [str, ...]}`` under
``train.collapse`` in the result JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: accuracy within this of 1/ways counts as chance level
CHANCE_MARGIN = 0.05


def detect_collapse(
    kind: str, ways: int | None, final_metrics: Mapping[str, float | None], history: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The ``train.collapse`` record from the last step's metrics and the validation history."""
    reasons: list[str] = []
    step: int | None = None
    if float(final_metrics.get("collapsed", 0.0) or 0.0) > 0:
        cs = final_metrics.get("collapse_step")
        step = int(cs) if cs is not None and cs >= 0 else None
        reasons.append(f"non-finite fitness or gradient at step {step}; updates stopped there")
    if kind == "classification" and ways and history:
        last = history[-1]
        chance = 1.0 / ways
        value = float(last["value"])
        if not math.isfinite(value) or value <= chance + CHANCE_MARGIN:
            reasons.append(
                f"validation accuracy {value:.3f} at step {last['step']} is at chance (1/{ways} = {chance:.3f})"
            )
            if step is None:
                first_bad = next(
                    (h["step"] for h in history if not math.isfinite(float(h["value"]))
                     or float(h["value"]) <= chance + CHANCE_MARGIN),
                    last["step"],
                )
                step = int(first_bad)
    return {"detected": bool(reasons), "step": step, "reasons": reasons}
