"""DMAML gives the same run on 1 CPU device, on 8 simulated CPU devices and as 2 processes.

Four subprocesses run the same harness run (sinusoid-5s, ``dmaml-fo``, 8 workers x 2 epochs
x 2 tasks, ``loss-median``, 3 runs with validation and a checkpoint): one process on one
device (all 8 workers vmapped on it), one on 8 simulated devices (one worker per device)
and two processes on 127.0.0.1 (``jax.distributed``, gloo; 4 workers per process). The
final meta-model, the loss history and the test MSE must agree to 1e-5 (float32 sums in
another order: the merge's psum adds 1, 2 or 8 partial sums). Each run is bounded by a
timeout, so a collective that never completes fails the test instead of hanging it.
A lone process told to wait for a second one ends with a clear error within its timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_dmaml_worker.py")
TIMEOUT_S = 240
EIGHT = ("--xla_force_host_platform_device_count=8 --xla_cpu_collective_timeout_seconds=200 "
         "--xla_cpu_collective_call_terminate_timeout_seconds=200")
ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp_path: Path, name: str, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "METABENCH_DIST_TIMEOUT": "120", **extra_env}
    if "XLA_FLAGS" not in extra_env:
        env.pop("XLA_FLAGS", None)  # one CPU device per process
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / name)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _wait(procs: dict[str, subprocess.Popen], tmp_path: Path) -> str:
    try:
        for proc in procs.values():
            proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"DMAML runs did not finish in {TIMEOUT_S}s; logs in {tmp_path}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    tmp_path = tmp_path_factory.mktemp("dmaml")
    port = _free_port()
    dist = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2"}
    procs = {
        "single": _start(tmp_path, "single", {}),
        "eight": _start(tmp_path, "eight", {"XLA_FLAGS": EIGHT}),
        "p0": _start(tmp_path, "pp", {**dist, "JAX_PROCESS_ID": "0"}),
        "p1": _start(tmp_path, "pp1", {**dist, "JAX_PROCESS_ID": "1"}),
    }
    logs = _wait(procs, tmp_path)
    assert all(p.returncode == 0 for p in procs.values()), logs
    files = {"single": "single/proc0.json", "eight": "eight/proc0.json", "p0": "pp/proc0.json",
             "p1": "pp1/proc1.json"}
    out = {k: json.loads((tmp_path / f).read_text()) for k, f in files.items()}
    out["_results"] = {k: sorted(str(p.name) for p in (tmp_path / d).glob("results/*.json"))
                       for k, d in (("single", "single"), ("eight", "eight"), ("p0", "pp"), ("p1", "pp1"))}
    return out


def test_layouts_are_what_they_claim(runs: dict) -> None:
    assert runs["single"]["device_count"] == 1 and runs["single"]["mesh"] == {"workers": 1}
    assert runs["eight"]["device_count"] == 8 and runs["eight"]["mesh"] == {"workers": 8}
    assert runs["p0"]["process_count"] == 2 and runs["p0"]["mesh"] == {"workers": 2}
    assert runs["p0"]["wrote_result"] and not runs["p1"]["wrote_result"]
    assert runs["_results"]["p1"] == [] and len(runs["_results"]["p0"]) == 1
    assert runs["_results"]["p0"] == runs["_results"]["single"] == runs["_results"]["eight"]  # same config hash


@pytest.mark.parametrize("layout", ["eight", "p0", "p1"])
def test_same_run_on_every_layout(runs: dict, layout: str) -> None:
    ref, other = runs["single"], runs[layout]
    assert np.max(np.abs(np.asarray(ref["params"]))) > 1e-2
    np.testing.assert_allclose(other["params"], ref["params"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(other["history"], ref["history"], rtol=1e-5, atol=ATOL)
    assert other["worker_step"] == ref["worker_step"] == [6] * 8  # 3 runs x 2 epochs each
    assert other["test_mse"] == pytest.approx(ref["test_mse"], rel=1e-5)
    assert other["val"] == pytest.approx(ref["val"], rel=1e-5)
    assert other["final_loss"] == pytest.approx(ref["final_loss"], rel=1e-5)
    assert 4 <= ref["kept"] <= 8  # loss-median keeps at least half of the workers


def test_the_two_processes_hold_the_same_model(runs: dict) -> None:
    np.testing.assert_array_equal(runs["p0"]["params"], runs["p1"]["params"])


def test_workers_that_do_not_divide_the_devices_are_refused(runs: dict) -> None:
    eight = runs["eight"]["errors"]
    for w in ("3", "12"):
        assert eight[w] is not None and "not divisible by the 8 devices" in eight[w] and "multiple of 8" in eight[w]
    assert "not divisible by the 2 devices" in runs["p0"]["errors"]["3"]
    assert runs["single"]["errors"]["3"] is None  # one device takes any number of workers
    for layout in ("single", "eight", "p0"):
        assert "expects" in runs[layout]["errors"]["processes"]


def test_a_lone_process_waiting_for_a_second_one_fails_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{_free_port()}",
           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0", "METABENCH_DIST_TIMEOUT": "3"}
    env.pop("XLA_FLAGS", None)
    code = "from metabench.distributed import initialize_from_env; initialize_from_env()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0  # jax aborts the process (DEADLINE_EXCEEDED) after the 3 s
    assert "process 0 of 2 waits up to 3s" in proc.stderr and "disagree on JAX_NUM_PROCESSES" in proc.stderr
