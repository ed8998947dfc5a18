"""The shared harness in two processes (jax.distributed, gloo on 127.0.0.1) end to end.

Two processes train with one global ``pop`` mesh (global standardisation): ES-MAML on
sinusoid-5s through the CLI (``python -m metabench.baselines.es.launch run ...``) and
ES-ProtoNet on a synthetic Omniglot-shaped env through ``metabench.harness.run``. The test
checks that only process 0 writes the result, that the result records both processes and
the 2-device mesh, and that its test metric equals a single-process run (same seed, same
total population).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 300
CLI = ["-m", "metabench.baselines.es.launch", "run", "--env", "sinusoid-5s", "--learner", "es-maml", "--steps", "3",
       "--val-every", "0", "--no-progress", "--set", "population=8", "--set", "standardise=global",
       "--set", "meta_batch=4", "--out"]
WORKER = [str(Path(__file__).with_name("_harness_worker.py"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp_path: Path, name: str, args: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **extra_env}
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, *args, str(tmp_path / name)]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("args", [CLI, WORKER], ids=["cli-es-maml-sinusoid", "harness-es-protonet-images"])
def test_two_process_harness_run_matches_single_process(tmp_path: Path, args: list[str]) -> None:
    port = _free_port()
    dist = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2"}
    procs = {
        "p0": _start(tmp_path, "p0", args, {**dist, "JAX_PROCESS_ID": "0"}),
        "p1": _start(tmp_path, "p1", args, {**dist, "JAX_PROCESS_ID": "1"}),
        "single": _start(tmp_path, "single", args, {}),
    }
    try:
        for proc in procs.values():
            proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"two-process harness run did not finish in {TIMEOUT_S}s; logs in {tmp_path}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = "\n".join(f"== {p.name}\n{p.read_text()[-2000:]}" for p in sorted(tmp_path.glob("*.log")))
    assert all(p.returncode == 0 for p in procs.values()), logs

    def results(name: str) -> list[Path]:
        return sorted((tmp_path / name).glob("results/*.json"))

    assert results("p1") == [], "process 1 must not write results"
    assert not (tmp_path / "p1").exists() or not any((tmp_path / "p1").rglob("*.json"))
    (r0,), (rs,) = results("p0"), results("single")
    assert r0.name == rs.name  # same env, learner, config hash and seed
    a, b = json.loads(r0.read_text()), json.loads(rs.read_text())
    assert a["device"]["process_count"] == 2 and a["device"]["device_count"] == 2 and a["device"]["mesh"] == {"pop": 2}
    assert b["device"]["process_count"] == 1 and b["device"]["mesh"] == {"pop": 1}
    ma, mb = a["metrics"][0], b["metrics"][0]
    assert ma["n_tasks"] == mb["n_tasks"] > 0
    assert ma["mean"] == pytest.approx(mb["mean"], rel=1e-5)
    assert a["train"]["final_loss"] == pytest.approx(b["train"]["final_loss"], rel=1e-5)
