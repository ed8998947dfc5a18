"""Metrics logs (metabench/harness/log.py): JSON lines per step and validation, resume, TensorBoard."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

import metabench
from metabench.cli import main
from metabench.harness import run
from metabench.harness.log import MetricsLog, read_log


def test_a_run_logs_every_step_every_validation_and_the_test(tiny: Any, sine_env: Any, tmp_path: Path) -> None:
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path / "out", steps=7, val_every=3, val_tasks=5,
            progress=False, log_dir=tmp_path / "logs", log_every=2)
    rows = read_log(tmp_path / "logs" / r.record["name"] / "metrics.jsonl")
    assert rows[0]["event"] == "start" and rows[0]["config_hash"] == r.record["config_hash"] and rows[0]["step"] == 0
    train = [x for x in rows if x["event"] == "train"]
    assert [x["step"] for x in train] == list(range(1, 8))
    assert train[-1]["loss"] == pytest.approx(r.record["train"]["final_loss"])
    val = [x for x in rows if x["event"] == "validation"]
    history = r.record["validation"]["history"]
    assert [x["step"] for x in val] == [h["step"] for h in history] == [3, 6, 7]
    assert [x["value"] for x in val] == pytest.approx([h["value"] for h in history])
    assert val[0]["metric"] == "mse"
    test = rows[-1]
    assert test["event"] == "test" and test["mean"] == pytest.approx(r.metric["mean"]) and test["n_tasks"] == 40
    times = [x["time"] for x in rows]
    assert times == sorted(times)


def test_a_resumed_run_appends_from_its_step(tiny: Any, sine_env: Any, tmp_path: Path) -> None:
    logs = tmp_path / "logs"

    def stop(step: int, state: Any, metrics: Any) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(metabench.MetabenchError, match="interrupted"):
        run(sine_env, "tiny-ridge", out_dir=tmp_path, steps=6, val_every=0, progress=False, log_dir=logs,
            callback=stop)
    r = run(sine_env, "tiny-ridge", out_dir=tmp_path, steps=6, val_every=0, progress=False, log_dir=logs,
            resume=True)
    rows = read_log(logs / r.record["name"] / "metrics.jsonl")
    starts = [x["step"] for x in rows if x["event"] == "start"]
    assert starts == [0, 4]
    assert [x["step"] for x in rows if x["event"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_non_finite_values_are_null_and_tensorboard_needs_its_extra(tmp_path: Path, monkeypatch: Any) -> None:
    log = MetricsLog(tmp_path, "r")
    log.train(1, {"loss": float("nan"), "acc": 0.5})
    assert read_log(tmp_path / "r" / "metrics.jsonl")[0] == {"event": "train", "time": pytest.approx(0, abs=60),
                                                              "step": 1, "loss": None, "acc": 0.5}
    monkeypatch.setitem(__import__("sys").modules, "tensorboardX", None)
    with pytest.raises(metabench.ConfigError, match=r"metabench\[tensorboard\]"):
        MetricsLog(tmp_path, "tb", tensorboard=True)


@pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is None, reason="tensorboardX not installed")
def test_tensorboard_event_files(tiny: Any, sine_env: Any, tmp_path: Path) -> None:
    from metabench.harness.config import RunConfig
    from metabench.harness.train import run_config

    cfg = RunConfig(env=sine_env.spec.id, learner="tiny-ridge", out_dir=str(tmp_path), steps=3, val_every=2,
                    val_tasks=5, progress=False, log_dir=str(tmp_path / "tb"), tensorboard=True)
    r = run_config(cfg, env=sine_env)
    events = list((tmp_path / "tb" / r.record["name"]).glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_cli_log_dir(tiny: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--env", "sinusoid-5s", "--learner", "tiny-ridge", "--steps", "2", "--val-every", "0",
                 "--out", str(tmp_path / "out"), "--log-dir", str(tmp_path / "logs"), "--no-progress"]) == 0
    (path,) = (tmp_path / "logs").glob("*/metrics.jsonl")
    assert [x["event"] for x in read_log(path)] == ["start", "train", "train", "test"]
    assert main(["run", "--env", "sinusoid-5s", "--learner", "tiny-ridge", "--steps", "2", "--tensorboard",
                 "--out", str(tmp_path / "out2"), "--no-progress"]) == 1
    assert "--log-dir" in capsys.readouterr().err
