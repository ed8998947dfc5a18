"""CLI fixtures: the tiny test learners and small scratch env ids, removed afterwards."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import metabench

_TINY = Path(__file__).parent.parent / "harness" / "tiny_learners.py"


@pytest.fixture(scope="session")
def tiny() -> Iterator[Any]:
    name = "metabench_tests_tiny_learners"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TINY)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    module = sys.modules[name]
    module.register()
    yield module
    module.unregister()


@pytest.fixture(scope="session")
def scratch_envs() -> Iterator[dict[str, str]]:
    """``tsine-5s`` (sinusoid) and ``tsynth-5w1s`` (synthetic images), 20 frozen eval tasks each."""
    metabench.register("tsine-5s-v0", "metabench.envs.sinusoid:Sinusoid", "regression",
                       {"shots": 5, "queries": 10}, eval_tasks=20, override=True)
    metabench.register("tsynth-5w1s-v0", "metabench.baselines._synthetic:SyntheticImages", "classification",
                       {"ways": 5, "shots": 1, "queries": 5}, eval_tasks=20, override=True)
    yield {"regression": "tsine-5s", "classification": "tsynth-5w1s"}
    for key in ("tsine-5s-v0", "tsynth-5w1s-v0"):
        metabench.registry.remove(key)
