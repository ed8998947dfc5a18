"""IQM and its stratified bootstrap interval (Agarwal et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from metabench.leaderboard.iqm import iqm, stratified_bootstrap_iqm


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.array([1.0, 2.0, 3.0, 100.0])) == 2.5  # cuts one from each end
    assert iqm(np.array([5.0, 1.0, 3.0])) == 3.0  # n = 3: floor(0.75) = 0 cut, the mean
    assert iqm(np.arange(8.0)) == 3.5
    assert iqm(np.array([[0.0, 10.0], [-50.0, 1.0]])) == 0.5  # over every entry


def test_iqm_equals_scipys_trim_mean() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 9, 40, 601):
        x = rng.standard_cauchy(n)
        assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    scores = np.random.default_rng(0).normal(size=(5, 30))
    a = stratified_bootstrap_iqm(scores, np.random.default_rng(7))
    b = stratified_bootstrap_iqm(scores, np.random.default_rng(7))
    c = stratified_bootstrap_iqm(scores, np.random.default_rng(8))
    assert a == b and a != c
    assert a.lo <= a.value <= a.hi and a.lo < a.hi


def test_resampling_is_within_tasks() -> None:
    """Runs that agree on every task leave nothing to resample: zero width, however much the
    tasks differ (an unstratified bootstrap over all cells would not be)."""
    tasks = np.linspace(0.0, 1.0, 20)
    scores = np.tile(tasks, (4, 1))
    ci = stratified_bootstrap_iqm(scores, np.random.default_rng(0))
    assert ci.lo == ci.hi == ci.value == pytest.approx(iqm(tasks))


def test_one_seed_has_no_spread_and_outliers_do_not_move_the_iqm() -> None:
    one = stratified_bootstrap_iqm(np.array([[0.2, 0.4, 0.6]]), np.random.default_rng(0))
    assert one.lo == one.value == one.hi
    seeds = np.array([[-3.2], [-3.6], [-3.4], [-3.5], [-11.0]])  # one failed seed (point-nav seed 6-like)
    ci = stratified_bootstrap_iqm(seeds, np.random.default_rng(0))
    assert ci.value == pytest.approx(-3.5) and ci.value > seeds.mean()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="float\\[runs, tasks\\]"):
        stratified_bootstrap_iqm(np.zeros(3), np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite"):
        stratified_bootstrap_iqm(np.array([[np.nan, 1.0]]), np.random.default_rng(0))
    with pytest.raises(ValueError):
        iqm(np.array([]))
