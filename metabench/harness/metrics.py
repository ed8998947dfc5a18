"""Metric names, directions and summaries (mean with a 95% confidence interval).

The CI is ``1.96 * std / sqrt(n)`` over evaluation tasks, with the population standard
deviation (``ddof=0``, as in the Prototypical Networks evaluation code), GUIDE.md section 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metabench.errors import ConfigError

#: Headline metric of each env kind and whether higher is better.
METRICS: dict[str, tuple[str, bool]] = {
    "classification": ("accuracy", True),
    "regression": ("mse", False),
    "rl": ("return", True),
}


def metric_for(kind: str) -> tuple[str, bool]:
    """``(name, higher_is_better)`` of the headline metric of ``kind``."""
    try:
        return METRICS[kind]
    except KeyError:
        raise ConfigError(f"no headline metric for env kind {kind!r}; kinds: {sorted(METRICS)}") from None


def is_better(new: float, old: float | None, higher_is_better: bool) -> bool:
    """Strict improvement (ties keep the earlier state); NaN never improves."""
    if not math.isfinite(new):
        return False
    if old is None:
        return True
    return new > old if higher_is_better else new < old


def summarize(values: Any) -> dict[str, float | int]:
    """``{mean, std, ci95, n_tasks}`` of a 1-D array of per-task values."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    n = int(v.size)
    if n == 0:
        raise ConfigError("summarize: no values")
    std = float(v.std())
    return {"mean": float(v.mean()), "std": std, "ci95": 1.96 * std / math.sqrt(n), "n_tasks": n}


def summarize_curve(curves: Any) -> dict[str, Any]:
    """Per-adaptation-step mean and CI of ``curves: float[n_tasks, S]``."""
    c = np.asarray(curves, dtype=np.float64)
    n = c.shape[0]
    std = c.std(axis=0)
    return {
        "x": list(range(c.shape[1])),
        "mean": [float(m) for m in c.mean(axis=0)],
        "ci95": [float(s) for s in 1.96 * std / math.sqrt(n)],
        "n_tasks": int(n),
    }
