"""Summaries over independent runs (seeds) that the reproduction scripts report."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def median_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(median, lo, hi)``: the median of the runs and a distribution-free confidence interval.

    The interval is ``[x_(k), x_(n-1-k)]`` of the sorted values with the largest ``k`` whose
    binomial coverage ``P(k < B <= n-1-k)``, ``B ~ Bin(n, 1/2)``, is at least ``level``; with
    fewer than 6 runs no ``k > 0`` reaches 95 % and the interval is the range of the runs.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("median_ci needs at least one value")
    best = (0, n - 1)
    for lo in range(n // 2 + 1):
        hi = n - 1 - lo
        if hi < lo:
            break
        cover = sum(math.comb(n, k) for k in range(lo + 1, hi + 1)) / 2**n
        if cover >= level:
            best = (lo, hi)
    return float(np.median(x)), float(x[best[0]]), float(x[best[1]])
