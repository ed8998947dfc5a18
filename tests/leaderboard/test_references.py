"""Published references (seed 003 Tables 3.1 / 3.4) beside the leaderboard's rows."""

from __future__ import annotations

import copy
from pathlib import Path

from metabench.leaderboard.published import PUBLISHED_SUPERVISED, references
from metabench.leaderboard.references import reference_lines, unrun_sections
from metabench.leaderboard.table import render


def test_seed003_tables_are_stored_for_every_learner_and_env():
    envs = [f"{d}-5w{k}s" for d in ("mini-imagenet", "cub", "mini-imagenet-to-cub", "cub-to-mini-imagenet") for k in (1, 5)]
    learners = {"train-from-scratch", "baseline", "baseline++", "meta-lstm", "meta-lstm-plus", "maml-fo", "maml",
                "turtle-fo", "turtle"}
    for env in envs:
        seed003 = {lid for lid, refs in PUBLISHED_SUPERVISED[env].items() if any("seed 003" in r.source for r in refs)}
        assert seed003 == learners, env
    # spot checks against the printed tables
    (t,) = [r for r in references("mini-imagenet-5w1s-v0", "turtle") if "3.1" in r.source]
    assert (t.value, t.ci95) == (0.48, 0.01)
    (m,) = [r for r in references("cub-to-mini-imagenet-5w5s", "maml") if "3.4" in r.source]
    assert (m.value, m.ci95) == (0.47, 0.00)


def test_references_stand_beside_our_best_row_or_say_not_run(records):
    r = copy.deepcopy(records["classification"])
    r["env"]["id"] = "cub-5w5s-v0"
    r["learner"]["id"] = "turtle"
    lines = reference_lines("cub-5w5s-v0", [(Path("x.json"), r)])
    turtle = [ln for ln in lines if ln.startswith("| turtle |") and "3.1" in ln]
    assert turtle and "72.0 ± 1.0 %" in turtle[0] and f"{100 * r['metrics'][0]['mean']:.2f}" in turtle[0]
    assert any(ln.startswith("| maml |") and ln.endswith("| not run |") for ln in lines)
    assert reference_lines("omniglot-lite-5w1s-v0", [(Path("x.json"), r)]) == []
    pp = copy.deepcopy(r)
    pp["learner"]["id"] = "baseline-pp"  # the registry's spelling of Baseline++
    lines = reference_lines("cub-5w5s-v0", [(Path("y.json"), pp)])
    assert any(ln.startswith("| baseline++ |") and "not run" not in ln for ln in lines)


def test_render_lists_referenced_envs_without_results(records, tmp_path):
    text = render([(tmp_path / "a.json", records["classification"])], tmp_path)
    assert "## Published references without a metabench result yet" in text
    assert "### mini-imagenet-to-cub-5w1s" in text
    assert unrun_sections([f"{e}-v0" for e in PUBLISHED_SUPERVISED]) == []


def test_median_ci_is_the_order_statistic_interval():
    from metabench.leaderboard.stats import median_ci

    assert median_ci([3.0, 1.0, 2.0, 5.0, 4.0]) == (3.0, 1.0, 5.0)  # n = 5: the range
    med, lo, hi = median_ci(list(range(30)))  # n = 30: x_(9) .. x_(20) covers 95.7 %
    assert (med, lo, hi) == (14.5, 9.0, 20.0)
