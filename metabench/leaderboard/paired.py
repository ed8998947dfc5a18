"""Paired comparison of two results on the same frozen test tasks.

Every learner is evaluated on the same tasks, so the difference ``d_i = a_i - b_i`` task by
task removes the task-to-task spread that two independent CIs carry. Reported: the mean
difference with a Student-t CI, the paired t-test, and a sign-flip permutation test
(under the null each ``d_i`` is symmetric about 0; distribution-free, seeded). Values
averaged over several training seeds compare those trained models on these tasks; the
seed-to-seed spread is what the IQM interval over seeds shows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from metabench.leaderboard.studentt import t_quantile, t_two_sided_p


class Paired(NamedTuple):
    """``diff = mean(a - b)`` over ``n`` shared tasks, its ``level`` CI, the paired t-test
    (``t``, ``p_t``, ``df = n - 1``) and the sign-flip permutation p-value ``p_perm``."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    t: float
    p_t: float
    p_perm: float
    n_perm: int
    level: float


def sign_flip_p(d: np.ndarray, rng: np.random.Generator, n_perm: int = 10_000, chunk: int = 1000) -> float:
    """Two-sided sign-flip permutation p-value of ``mean(d) = 0``, ``(1 + hits) / (1 + n_perm)``."""
    d = np.asarray(d, dtype=np.float64)
    observed = abs(d.mean()) - 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))  # ties count as hits
    hits = 0
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        signs = rng.integers(0, 2, size=(b, d.size), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) / d.size >= observed))
    return (1 + hits) / (1 + n_perm)


def paired_compare(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *, level: float = 0.95,
                   n_perm: int = 10_000) -> Paired:
    """Compare per-task values ``a`` and ``b`` (same tasks, same order)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same tasks: {a.size} vs {b.size}")
    n = a.size
    if n < 2:
        raise ValueError(f"a paired comparison needs at least 2 shared tasks, got {n}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("per-task values must be finite")
    d = a - b
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:  # every task differs by the same amount (0: identical results)
        t, p_t = (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
        half = 0.0
    else:
        t = mean / se
        p_t = t_two_sided_p(t, n - 1)
        half = t_quantile(0.5 + level / 2.0, n - 1) * se
    if n_perm == 0:  # the t-test only (the leaderboard's tie marks)
        p_perm = float("nan")
    else:
        p_perm = 1.0 if not np.any(d) else sign_flip_p(d, rng, n_perm)
    return Paired(n, float(a.mean()), float(b.mean()), mean, mean - half, mean + half, t, p_t, p_perm, n_perm, level)
