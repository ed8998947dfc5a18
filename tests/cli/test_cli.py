"""The ``metabench`` command line: listing, runs, errors (one line, exit 1), leaderboard, data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from metabench.cli import main, parse_assignments
from metabench.errors import ConfigError


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "list")
    assert code == 0 and "sinusoid-5s-v0" in out and "omniglot-lite-5w1s-v0" in out and "protonet" in out
    code, out, _ = cli(capsys, "list", "learners")
    assert code == 0 and "maml" in out and "sinusoid-5s" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "sinusoid-5", "--learner", "maml"], "Did you mean: 'sinusoid-5s'"),
        (["--env", "sinusoid-5s", "--learner", "mamll"], "Did you mean: 'maml'"),
        (["--env", "sinusoid-5s", "--learner", "protonet"], "does not support regression envs"),
        (["--env", "sinusoid-5s", "--learner", "maml", "--set", "inner_lrr=1"], "Keys: backbone, channels, depth"),
        (["--env", "sinusoid-5s", "--learner", "maml", "--set", "inner_lr"], "--set expects key=value"),
        (["--env", "sinusoid-5s", "--learner", "maml", "--env-set", "shotz=3"], "Options of this env"),
        (["--env", "sinusoid-5s", "--learner", "maml", "--steps", "0"], "steps must be an integer >= 1"),
    ],
)
def test_run_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                 message: str) -> None:
    code, out, err = cli(capsys, "run", *argv, "--out", str(tmp_path), "--no-progress")
    assert code == 1 and err.startswith("metabench: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=x", "c=(1, 2)", "d=1=2"], "--env-set", literal=True) == {
        "a": 1, "b": "x", "c": (1, 2), "d": "1=2"}
    assert parse_assignments(["a=1"], "--set", literal=False) == {"a": "1"}
    with pytest.raises(ConfigError):
        parse_assignments(["=1"], "--set", literal=False)


def test_run_and_leaderboard(capsys: pytest.CaptureFixture[str], tiny: Any, scratch_envs: dict[str, str],
                             tmp_path: Path) -> None:
    code, out, err = cli(capsys, "run", "--env", scratch_envs["regression"], "--learner", "tiny-ridge",
                         "--steps", "4", "--val-every", "2", "--val-tasks", "5", "--set", "lr=0.05",
                         "--env-set", "queries=7", "--out", str(tmp_path), "--no-progress")
    assert code == 0, err
    assert "test mse" in out and "over 20 tasks" in out
    (path,) = (tmp_path / "results").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["learner"]["overrides"] == {"lr": "0.05"} and rec["learner"]["config"]["lr"] == 0.05
    assert rec["env"]["spec"]["kwargs"]["queries"] == 7 and rec["env"]["spec"]["overrides"] == ["queries"]
    code, out, _ = cli(capsys, "leaderboard", "--dir", str(tmp_path))
    assert code == 0 and (tmp_path / "README.md").exists() and "tsine-5s-v0" in (tmp_path / "README.md").read_text()
    # a broken result file is named and fails the command
    (tmp_path / "results" / "junk.json").write_text("[]")
    code, _, err = cli(capsys, "leaderboard", "--dir", str(tmp_path))
    assert code == 1 and "junk.json" in err and "Traceback" not in err


def test_interrupt_exit_code_and_resume_hint(capsys: pytest.CaptureFixture[str], tiny: Any,
                                             scratch_envs: dict[str, str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import metabench.harness as harness
    import metabench.harness.train as train

    real = train.run_config

    def interrupted(cfg: Any, **kw: Any) -> Any:
        def stop(step: int, *_: Any) -> None:
            if step == 2:
                raise KeyboardInterrupt
        return real(cfg, callback=stop, **kw)

    monkeypatch.setattr(harness, "run_config", interrupted)
    argv = ["run", "--env", scratch_envs["regression"], "--learner", "tiny-ridge", "--steps", "4", "--val-every",
            "0", "--out", str(tmp_path), "--no-progress", "--set", "lr=0.05"]
    code, _, err = cli(capsys, *argv)
    assert code == 130 and "interrupted at step 2/4" in err
    hint = err.split("Resume with: ", 1)[1].strip()
    assert hint.startswith("metabench run --env tsine-5s --learner tiny-ridge") and hint.endswith("--resume")
    assert "--set lr=0.05" in hint
    monkeypatch.setattr(harness, "run_config", real)
    code, out, err = cli(capsys, *hint.split()[1:])
    assert code == 0 and "resuming" in err and "test mse" in out


def test_protonet_smoke_through_the_cli(capsys: pytest.CaptureFixture[str], scratch_envs: dict[str, str],
                                        tmp_path: Path) -> None:
    code, out, err = cli(capsys, "run", "--env", scratch_envs["classification"], "--learner", "protonet",
                         "--steps", "3", "--val-every", "0", "--eval-batch", "20", "--set", "channels=8",
                         "--set", "depth=2", "--out", str(tmp_path), "--no-progress")
    assert code == 0, err
    (path,) = (tmp_path / "results").glob("*.json")
    rec = json.loads(path.read_text())
    m = rec["metrics"][0]
    assert (m["name"], m["n_tasks"]) == ("accuracy", 20) and 0.0 <= m["mean"] <= 1.0
    assert rec["learner"]["id"] == "protonet" and rec["learner"]["config"]["channels"] == 8


def test_backbone_name_through_the_cli(capsys: pytest.CaptureFixture[str], scratch_envs: dict[str, str],
                                      tmp_path: Path) -> None:
    """``--set backbone=NAME`` builds the registered flax network; the record names it (docs/backbones.md)."""
    code, out, err = cli(capsys, "run", "--env", scratch_envs["classification"], "--learner", "protonet",
                         "--steps", "2", "--val-every", "0", "--eval-batch", "20", "--set", "backbone=conv4-stride",
                         "--set", "channels=4", "--set", "depth=2", "--out", str(tmp_path), "--no-progress")
    assert code == 0, err
    (path,) = (tmp_path / "results").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["learner"]["config"]["backbone"] == "conv4-stride" and 0.0 <= rec["metrics"][0]["mean"] <= 1.0


def test_data_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "data", "status", "--root", str(tmp_path))
    assert code == 0 and "omniglot" in out and "missing" in out
    code, _, err = cli(capsys, "data", "prepare", "omniglot", "--root", str(tmp_path))
    assert code == 1 and "omniglot" in err and "Traceback" not in err


def test_console_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "metabench.cli", "list", "envs"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "sinusoid-5s-v0" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "metabench.cli", "run", "--env", "nope", "--learner", "maml"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.startswith("metabench: error: unknown env id 'nope'")
