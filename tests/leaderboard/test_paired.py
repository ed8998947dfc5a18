"""Paired comparison (t-test, CI, sign-flip test), Student t and Welch's test in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metabench.leaderboard.paired import paired_compare, sign_flip_p
from metabench.leaderboard.studentt import betainc, t_quantile, t_two_sided_p
from metabench.leaderboard.welch import welch_p


def test_student_t_against_printed_tables() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.975, 10) == pytest.approx(2.228, abs=1e-3)
    assert t_quantile(0.995, 39) == pytest.approx(2.708, abs=1e-3)
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-4)
    assert t_two_sided_p(0.0, 5) == 1.0 and t_two_sided_p(math.inf, 5) == 0.0
    assert betainc(2.0, 3.0, 0.0) == 0.0 and betainc(2.0, 3.0, 1.0) == 1.0
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3)  # the uniform's CDF


def test_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a = rng.normal(size=40)
    b = a + rng.normal(0.2, 0.5, size=40)
    p = paired_compare(a, b, np.random.default_rng(0), n_perm=2000)
    ref = stats.ttest_rel(a, b)
    assert p.t == pytest.approx(ref.statistic, rel=1e-10) and p.p_t == pytest.approx(ref.pvalue, rel=1e-8)
    half = stats.t.ppf(0.975, 39) * np.std(a - b, ddof=1) / math.sqrt(40)
    assert (p.lo, p.hi) == (pytest.approx(p.diff - half), pytest.approx(p.diff + half))
    assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-8)


def test_pairing_finds_what_independent_intervals_miss() -> None:
    """Tasks vary far more than the learners differ: the paired test sees the constant gap."""
    rng = np.random.default_rng(2)
    task_difficulty = rng.normal(0.0, 5.0, size=100)
    a = task_difficulty + 0.3 + rng.normal(0, 0.2, 100)
    b = task_difficulty + rng.normal(0, 0.2, 100)
    p = paired_compare(a, b, np.random.default_rng(0), n_perm=2000)
    assert p.p_t < 1e-6 and p.p_perm < 0.001 and p.lo > 0
    assert welch_p(a, b) > 0.5  # unpaired: no difference visible


def test_permutation_p_under_the_null_and_determinism() -> None:
    d = np.random.default_rng(3).normal(size=50)
    d -= d.mean()  # exactly symmetric about zero in the mean
    p1 = sign_flip_p(d, np.random.default_rng(0), 4000)
    assert p1 > 0.9  # every flip is at least as extreme as a zero mean
    assert sign_flip_p(d + 1.0, np.random.default_rng(0), 4000) == pytest.approx(1 / 4001)
    assert sign_flip_p(d, np.random.default_rng(5), 4000) == sign_flip_p(d, np.random.default_rng(5), 4000)


def test_degenerate_inputs() -> None:
    same = paired_compare(np.ones(10), np.ones(10), np.random.default_rng(0))
    assert (same.diff, same.p_t, same.p_perm, same.lo, same.hi) == (0.0, 1.0, 1.0, 0.0, 0.0)
    shift = paired_compare(np.ones(10) + 0.5, np.ones(10), np.random.default_rng(0), n_perm=0)
    assert shift.p_t == 0.0 and shift.t == math.inf and math.isnan(shift.p_perm)
    with pytest.raises(ValueError, match="same tasks"):
        paired_compare(np.ones(3), np.ones(4), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2"):
        paired_compare(np.ones(1), np.ones(1), np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite"):
        paired_compare(np.array([1.0, np.nan]), np.ones(2), np.random.default_rng(0))
    assert welch_p(np.ones(1), np.ones(3)) is None
