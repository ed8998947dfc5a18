"""Two Python processes on 127.0.0.1 form one global ``pop`` mesh (jax.distributed + gloo on CPU).

Both run three ES steps (WSR, global standardisation) and must end with identical
parameters, equal to a single-process run with the same total population.
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

WORKER = Path(__file__).with_name("_es_worker.py")
TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(tmp_path: Path, pid: int, nproc: int, port: int) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"proc{pid}_of{nproc}.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    log = open(tmp_path / f"proc{pid}_of{nproc}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(pid), str(nproc), str(port), str(out)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    return proc, out


@pytest.mark.slow  # the default suite runs the same collectives end to end in test_harness_two_process.py
def test_two_processes_match_single_process(tmp_path: Path) -> None:
    port = free_port()
    jobs = [launch(tmp_path, 0, 2, port), launch(tmp_path, 1, 2, port), launch(tmp_path, 0, 0, 0)]
    try:
        for proc, _ in jobs:
            proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"multi-process ES run did not finish in {TIMEOUT_S}s; logs in {tmp_path}")
    finally:
        for proc, _ in jobs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for (proc, out), name in zip(jobs, ("proc0", "proc1", "single")):
        logs = "\n".join(p.read_text()[-3000:] for p in tmp_path.glob("*.log"))
        assert proc.returncode == 0, f"{name} failed:\n{logs}"
    p0, p1, single = (json.loads(out.read_text()) for _, out in jobs)
    assert p0["process_count"] == 2 and p0["device_count"] == 2 and p0["local_devices"] == 1
    assert p0["mesh_devices"] == 2
    assert single["process_count"] == 1 and single["mesh_devices"] == 1
    np.testing.assert_array_equal(p0["mu"], p1["mu"])  # both processes hold the same parameters
    np.testing.assert_allclose(p0["mu"], single["mu"], rtol=0, atol=1e-6)
    assert np.max(np.abs(np.asarray(single["mu"]))) > 1e-3
    np.testing.assert_allclose(p0["losses"], single["losses"], rtol=1e-5)
