"""The multi-process launcher's env-var handling (no jax.distributed started here)."""

from __future__ import annotations

import pytest

from metabench.baselines.es.launch import initialize_from_env
from metabench.errors import ConfigError


def test_single_process_is_a_no_op() -> None:
    assert initialize_from_env({}) is False
    assert initialize_from_env({"JAX_NUM_PROCESSES": "1"}) is False


def test_missing_variables_are_named() -> None:
    with pytest.raises(ConfigError, match="JAX_COORDINATOR_ADDRESS, JAX_PROCESS_ID"):
        initialize_from_env({"JAX_NUM_PROCESSES": "2"})
    with pytest.raises(ConfigError, match="JAX_PROCESS_ID"):
        initialize_from_env({"JAX_NUM_PROCESSES": "2", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"})


def test_a_rank_outside_the_process_count_is_refused() -> None:
    env = {"JAX_NUM_PROCESSES": "2", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"}
    with pytest.raises(ConfigError, match=r"JAX_PROCESS_ID=2 is outside 0\.\.1"):
        initialize_from_env({**env, "JAX_PROCESS_ID": "2"})
    with pytest.raises(ConfigError, match="must be an integer"):
        initialize_from_env({"JAX_NUM_PROCESSES": "two"})


def test_the_old_launcher_is_the_core_one() -> None:
    import metabench.baselines.es.launch as old
    import metabench.distributed as core

    assert old.initialize_from_env is core.initialize_from_env and old.main is core.main
