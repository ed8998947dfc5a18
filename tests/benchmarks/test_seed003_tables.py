"""Smoke run of benchmarks/reproduce/seed003_tables.py on generated miniImageNet pickles and a
CUB folder (the published on-disk formats), and its refusal when the data is missing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tables = _load("metabench_seed003_tables", ROOT / "benchmarks" / "reproduce" / "seed003_tables.py")


@pytest.fixture(scope="module")
def root(cross_domain_root: Path) -> Path:
    return cross_domain_root


def test_tables_script_runs_through_the_harness_on_fixtures(root: Path, tmp_path: Path, capsys) -> None:
    summary = tmp_path / "summary.json"
    out = tables.main([
        "--root", str(root), "--envs", "mini-imagenet-to-cub-5w1s", "--learners", "turtle,no-such-learner",
        "--seeds", "0,1", "--steps", "1", "--val-every", "0", "--eval-tasks", "2", "--set", "channels=2",
        "--set", "depth=1", "--set", "inner_steps=1", "--set", "meta_batch=1", "--env-set", "queries=2",
        "--out", str(tmp_path), "--summary", str(summary), "--no-progress",
    ])
    (row,) = out["rows"]
    assert (row["env"], row["learner"], row["runs"]) == ("mini-imagenet-to-cub-5w1s", "turtle", 2)
    assert all(0.0 <= v <= 1.0 for v in row["finals"]) and row["ci95"][0] <= row["median"] <= row["ci95"][1]
    assert {r["source"] for r in row["published"]} == {"Huisman 2024 (seed 003), Table 3.4"}
    assert json.loads(summary.read_text())["rows"][0]["results"] == row["results"]
    for name in row["results"]:  # real harness result files
        assert (tmp_path / "results" / f"{name}.json").is_file()
    assert "not registered, skipped: no-such-learner" in capsys.readouterr().err


def test_tables_script_names_missing_data_before_training(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        tables.main(["--root", str(tmp_path), "--envs", "cub-5w1s", "--learners", "maml", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "data missing, nothing was run" in err and "cub-5w1s" in err
    assert not (tmp_path / "results").exists()
