"""``run_bench``: runs a plan, skips unregistered learners and envs without data, writes the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metabench.errors import MetabenchError
from metabench.harness.bench import QUICK, BenchItem, run_bench


def test_bench_runs_skips_and_writes_table(tiny: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("METABENCH_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "no-cache"))
    plan = [
        BenchItem("sinusoid-5s", "tiny-ridge", steps=3, val_every=0, eval_batch=100),
        BenchItem("sinusoid-5s", "not-a-learner", steps=3),
        BenchItem("omniglot-lite-5w1s", "tiny-centroid", steps=3),
    ]
    records = run_bench(tmp_path / "lb", plan=plan, progress=False)
    err = capsys.readouterr().err
    assert [r["learner"]["id"] for r in records] == ["tiny-ridge"]
    assert "skip sinusoid-5s x not-a-learner: learner 'not-a-learner' is not registered yet" in err
    assert "skip omniglot-lite-5w1s x tiny-centroid: DataError" in err
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert "## sinusoid-5s-v0" in readme and "tiny-ridge" in readme and "## omniglot-lite-5w1s" not in readme


def test_bench_reports_failures_after_running_the_rest(tiny: Any, tmp_path: Path) -> None:
    plan = [
        BenchItem("sinusoid-5s", "tiny-ridge", steps=3, val_every=0, overrides={"nan_at": 1}),
        BenchItem("sinusoid-5s", "tiny-ridge", steps=2, val_every=0, eval_batch=100),
    ]
    with pytest.raises(MetabenchError, match="1 benchmark run"):
        run_bench(tmp_path, plan=plan, progress=False, regenerate_table=False)
    assert len(list((tmp_path / "results").glob("*.json"))) == 1


def test_quick_plan_uses_the_real_learners() -> None:
    assert {i.learner for i in QUICK} >= {"protonet", "maml"}
    assert any(i.env.startswith("sinusoid") for i in QUICK)
    assert any(i.env.startswith("omniglot-lite") for i in QUICK)
