"""``metabench compare``: paired differences on shared tasks, and every refusal with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metabench.cli import main
from metabench.leaderboard import write_result
from metabench.leaderboard.compare import CompareError, Side, compare, report


def _pair(records: Any, pertask: Any, shift: float = 0.1) -> tuple[dict[str, Any], dict[str, Any]]:
    cls = records["classification"]
    n = cls["metrics"][0]["n_tasks"]
    base = np.random.default_rng(0).integers(5, 21, n) / 25
    return (pertask(cls, np.clip(base + shift, 0, 1), learner="tiny-centroid", seed=0),
            pertask(cls, base, learner="tiny-centroid", seed=1))


def test_files_compare_task_by_task(records: Any, pertask: Any, tmp_path: Path, capsys: Any) -> None:
    a, b = _pair(records, pertask)
    pa, pb = write_result(a, tmp_path), write_result(b, tmp_path)
    assert main(["compare", str(pa), str(pb)]) == 0
    out = capsys.readouterr().out
    va, vb = np.array(a["per_task"]["values"]), np.array(b["per_task"]["values"])
    diff = 100 * (va - vb).mean()
    assert f"paired difference A - B: {diff:+.4g} %" in out
    assert f"{a['metrics'][0]['n_tasks']} shared test tasks" in out
    assert "paired t-test: t = " in out and "sign-flip permutation test: p = " in out
    assert f"A: {pa.name}" in out and f"{pa.name} is better" in out
    assert main(["compare", str(pa), str(pa)]) == 0  # a result against itself: no difference
    assert "paired difference A - B: +0 %" in capsys.readouterr().out


def test_seeds_are_averaged_per_task(records: Any, pertask: Any) -> None:
    a, b = _pair(records, pertask, shift=0.0)
    c = pertask(records["classification"], np.array(b["per_task"]["values"]) + 0.2, learner="x", seed=2)
    p = compare(Side("ab", (a, b)), Side("c", (c,)), n_perm=100)
    expected = (np.array(a["per_task"]["values"]) + np.array(b["per_task"]["values"])) / 2 - np.array(c["per_task"]["values"])
    assert p.diff == pytest.approx(expected.mean())


@pytest.mark.parametrize("change, why", [
    (lambda r: r["env"].update(id="other-env-v0"), "different envs"),
    (lambda r: r["env"].update(eval_hash="0" * 64), "different eval sets (eval hashes)"),
    (lambda r: r["metrics"][0].update(name="mse"), "different metrics"),
])
def test_refusals(records: Any, pertask: Any, change: Any, why: str) -> None:
    a, b = _pair(records, pertask)
    change(b)
    with pytest.raises(CompareError, match=why.replace("(", r"\(").replace(")", r"\)")):
        compare(Side("a", (a,)), Side("b", (b,)))


def test_results_without_per_task_values_say_so(records: Any, pertask: Any, tmp_path: Path, capsys: Any) -> None:
    a, b = _pair(records, pertask)
    old = json.loads(json.dumps(b))
    old.pop("per_task")
    old["schema_version"] = "1.0"
    pa, pb = write_result(a, tmp_path), write_result(old, tmp_path)
    assert main(["compare", str(pa), str(pb)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("metabench: error: ") and err.count("\n") == 1
    assert "has no per-task values (schema 1.0" in err and "rerun it" in err


def test_bad_arguments_are_one_line_errors(records: Any, pertask: Any, tmp_path: Path, capsys: Any) -> None:
    a, _ = _pair(records, pertask)
    pa = write_result(a, tmp_path)
    assert main(["compare", str(pa), str(tmp_path / "missing.json")]) == 1
    assert "no such result file" in capsys.readouterr().err
    assert main(["compare", str(pa), "maml"]) == 1
    assert "pass --env ENV" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main(["compare", str(pa), str(broken)]) == 1
    assert "not readable JSON" in capsys.readouterr().err


def test_learner_ids_use_their_canonical_runs(tmp_path: Path, capsys: Any) -> None:
    """Learner ids on an env resolve to canonical runs; none there is a clear refusal."""
    assert main(["compare", "maml", "maml-rl", "--env", "point-nav", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no canonical run (" in err and ") of maml on point-nav-v0 in " in err and "pass result files" in err


def test_report_says_which_is_better_by_direction(records: Any, pertask: Any) -> None:
    a, b = _pair(records, pertask)
    sa, sb = Side("A", (a,)), Side("B", (b,))
    assert report(sa, sb, compare(sa, sb, n_perm=100))[-1].startswith("A is better")
    for r in (a, b):
        r["metrics"][0]["higher_is_better"] = False
    assert report(sa, sb, compare(sa, sb, n_perm=100))[-1].startswith("B is better")
