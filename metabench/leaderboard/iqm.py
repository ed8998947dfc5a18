"""Interquartile mean with a stratified bootstrap CI (Agarwal et al. 2021, "Deep RL at the
Edge of the Statistical Precipice"), in numpy (the rliable package is archived).

``scores: float[runs, tasks]`` -- here runs are training seeds and tasks the env's frozen
test tasks. The IQM is the mean of the middle 50 % of all ``runs x tasks`` scores
(``scipy.stats.trim_mean(x, 0.25)``: ``floor(0.25 n)`` cut from each end). The stratified
bootstrap resamples the runs with replacement independently within every task (the
stratum) and takes percentiles of the IQM over the resamples. With one run per task the
interval has zero width: one seed says nothing about seed-to-seed spread.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Interval(NamedTuple):
    """A point estimate and its percentile bootstrap interval."""

    value: float
    lo: float
    hi: float


def _iqm_rows(x: np.ndarray) -> np.ndarray:
    """IQM of every row of ``x: float[B, n]`` (a partition, not a sort: linear per row)."""
    n = x.shape[1]
    cut = int(np.floor(0.25 * n))
    if cut == 0:
        return x.mean(axis=1)
    part = np.partition(x, [cut, n - cut - 1], axis=1)
    return part[:, cut:n - cut].mean(axis=1)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries of ``scores``."""
    x = np.asarray(scores, dtype=np.float64).reshape(1, -1)
    if x.size == 0:
        raise ValueError("iqm needs at least one score")
    return float(_iqm_rows(x)[0])


def stratified_bootstrap_iqm(scores: np.ndarray, rng: np.random.Generator, *, reps: int = 1000,
                             level: float = 0.95, chunk: int = 250) -> Interval:
    """IQM of ``scores: float[runs, tasks]`` with a ``level`` percentile interval over ``reps``
    stratified bootstrap resamples drawn from ``rng`` (pass a seeded ``np.random.default_rng``)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"scores must be a non-empty float[runs, tasks] array, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    runs, tasks = s.shape
    point = iqm(s)
    if runs == 1:
        return Interval(point, point, point)
    cols = np.arange(tasks)
    stats = []
    for start in range(0, reps, chunk):
        b = min(chunk, reps - start)
        idx = rng.integers(0, runs, size=(b, runs, tasks))  # per task, which run fills each slot
        stats.append(_iqm_rows(s[idx, cols].reshape(b, runs * tasks)))
    boot = np.concatenate(stats)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return Interval(point, float(lo), float(hi))
