"""Two real result records (tiny learners, small runs) shared by the leaderboard tests."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import metabench

_TINY = Path(__file__).parent.parent / "harness" / "tiny_learners.py"


def _load_tiny() -> Any:
    name = "metabench_tests_tiny_learners"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TINY)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


@pytest.fixture(scope="session")
def records(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """``{"regression": record, "classification": record}`` from real harness runs."""
    from metabench.baselines._synthetic import synthetic_env
    from metabench.harness import run

    tiny = _load_tiny()
    tiny.register()
    out = tmp_path_factory.mktemp("records")
    sine = metabench.make(metabench.spec("sinusoid-5s").replace(eval_tasks=20))
    reg = run(sine, "tiny-ridge", steps=4, val_every=2, val_tasks=5, out_dir=out, progress=False, write_result=False)
    cls = run(synthetic_env(ways=5, shots=1, queries=5), "tiny-centroid", steps=2, val_every=1, val_tasks=5,
              out_dir=out, progress=False, write_result=False)
    yield {"regression": reg.record, "classification": cls.record}
    tiny.unregister()


@pytest.fixture(scope="session")
def variant() -> Any:
    """The ``make_variant`` function (conftest modules are not importable under importlib mode)."""
    return make_variant


def make_variant(record: dict[str, Any], *, learner: str | None = None, seed: int | None = None,
            mean: float | None = None) -> dict[str, Any]:
    """A copy of ``record`` with another learner id, seed or headline mean (and a matching name)."""
    r = copy.deepcopy(record)
    if learner is not None:
        r["learner"]["id"] = learner
    if seed is not None:
        r["seed"] = seed
    if mean is not None:
        r["metrics"][0]["mean"] = mean
    r["name"] = f"{r['env']['id']}__{r['learner']['id']}__{r['config_hash'][:8]}__s{r['seed']}"
    return r


@pytest.fixture(scope="session")
def pertask() -> Any:
    """The ``with_per_task`` function."""
    return with_per_task


def with_per_task(record: dict[str, Any], values: Any, *, learner: str | None = None, seed: int | None = None,
                  config_hash: str | None = None) -> dict[str, Any]:
    """A copy of ``record`` (a variant) whose per-task values are ``values`` and whose headline
    mean is their mean (``config_hash``: another configuration)."""
    import numpy as np

    from metabench.harness.per_task import encode_per_task

    r = make_variant(record, learner=learner, seed=seed)
    if config_hash is not None:
        r["config_hash"] = config_hash
    m = r["metrics"][0]
    block = encode_per_task(values, metric=m["name"], adaptation_step=m.get("adaptation_step", 0))
    r["per_task"] = block
    v = np.asarray(block["values"], dtype=np.float64)
    m.update(mean=float(v.mean()), n_tasks=int(v.size), ci95=float(1.96 * v.std() / np.sqrt(v.size)))
    r["name"] = f"{r['env']['id']}__{r['learner']['id']}__{r['config_hash'][:8]}__s{r['seed']}"
    return r
