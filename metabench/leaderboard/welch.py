"""Welch's unpaired t-test over training seeds: the fallback for results without per-task values."""

from __future__ import annotations

import math

import numpy as np

from metabench.leaderboard.studentt import t_two_sided_p


def welch_p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided p-value of equal means of ``a`` and ``b`` (seed means); None with fewer than
    two values on either side."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return None
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0.0:
        return 1.0 if a.mean() == b.mean() else 0.0
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return t_two_sided_p(float(t), float(df))
