"""The sharded ES update on 8 simulated CPU devices (a subprocess: XLA_FLAGS must precede jax)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_mesh_check.py")


@pytest.fixture(scope="module")
def report() -> dict:
    # a loaded machine can keep a simulated device from reaching a collective within XLA's 40 s
    flags = ("--xla_force_host_platform_device_count=8 --xla_cpu_collective_timeout_seconds=300 "
             "--xla_cpu_collective_call_terminate_timeout_seconds=300")
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_visible(report: dict) -> None:
    assert report["devices"] == 8


def test_global_mode_equals_single_device(report: dict) -> None:
    r = report["wsr_global"]
    assert r["grad_norm"] > 1e-3  # a real, non-zero update
    assert r["max_abs_diff_8_vs_1"] < 1e-6
    assert r["max_abs_diff_1_vs_ref"] < 1e-6
    assert r["mean_diff"] < 1e-6


def test_local_mode_differs_by_design(report: dict) -> None:
    """Per-device standardisation (the seed's scheme) is a different estimator on 8 shards."""
    assert report["wsr_local"]["max_abs_diff_8_vs_1"] > 1e-5


@pytest.mark.parametrize("mode", ["global", "local"])
def test_fd_independent_of_devices(report: dict, mode: str) -> None:
    r = report[f"fd_{mode}"]
    assert r["max_abs_diff_8_vs_1"] < 1e-6
    assert r["max_abs_diff_1_vs_ref"] < 1e-3  # jit vs shard_map fusion: 1 ulp of F / fd_step


def test_learner_steps_equal_across_meshes(report: dict) -> None:
    assert report["learner_moved"] > 1e-3
    assert report["learner_max_abs_diff"] < 1e-6
    assert report["state_sharding_8"] == "P()" and report["state_devices_8"] == 8
    assert report["state_devices_1"] == 1


def test_indivisible_population_is_a_config_error(report: dict) -> None:
    assert "not divisible by the 8 devices" in report["indivisible_error"]
    assert "not divisible by the 8 devices" in report["learner_indivisible_error"]
    assert report["population_per_device_total"] == 32


def test_es_protonet_through_the_harness_on_8_devices(report: dict) -> None:
    """Training, validation and the test evaluation of the harness on an 8-device mesh = 1 device."""
    h8, h1 = report["harness"]["8"], report["harness"]["1"]
    assert h8["mesh"] == {"pop": 8} and h1["mesh"] == {"pop": 1}
    assert h8["n_tasks"] == h1["n_tasks"] > 0
    assert h8["mean"] == pytest.approx(h1["mean"], abs=1e-6)
    assert len(h8["val"]) >= 1 and h8["val"] == pytest.approx(h1["val"], abs=1e-6)
