"""Fixtures: tiny test learners registered for one test, small-eval-set envs."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import metabench

_TINY = Path(__file__).with_name("tiny_learners.py")


def load_tiny() -> Any:
    """Import tiny_learners.py by path, once per process (dataclasses need it in sys.modules)."""
    name = "metabench_tests_tiny_learners"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TINY)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


@pytest.fixture(scope="session")
def tiny() -> Iterator[Any]:
    """Registers ``tiny-centroid`` and ``tiny-ridge`` for the session, removes them afterwards."""
    module = load_tiny()
    module.register()
    yield module
    module.unregister()


#: Settings of the shared baseline run (small: every run compiles a few functions).
SMALL = dict(steps=12, val_every=4, val_tasks=10, progress=False)


@pytest.fixture(scope="session")
def baseline(tiny: Any, sine_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One uninterrupted ``tiny-ridge`` run (seed 0, ``SMALL``) that several tests compare against."""
    from metabench.harness import run

    return run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path_factory.mktemp("baseline"), **SMALL)


@pytest.fixture(scope="session")
def sine_env() -> Any:
    """sinusoid-5s with 40 frozen eval tasks per split (the registered one has 600)."""
    return metabench.make(metabench.spec("sinusoid-5s").replace(eval_tasks=40))


@pytest.fixture(scope="session")
def image_env() -> Any:
    """A synthetic Omniglot-shaped 5-way 1-shot env with 20 eval tasks (no data needed)."""
    from metabench.baselines._synthetic import synthetic_env

    return synthetic_env(ways=5, shots=1, queries=5)
