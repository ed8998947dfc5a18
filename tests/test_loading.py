"""``metabench.load`` (metabench/loading.py) on real tiny harness runs: maml on sinusoid, protonet on images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import metabench
from metabench.baselines._synthetic import synthetic_env
from metabench.harness import CheckpointError, Evaluator, run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("runs")
    sine = metabench.make(metabench.spec("sinusoid-5s").replace(eval_tasks=20))
    maml = run(sine, "maml", steps=3, val_every=2, val_tasks=5, out_dir=out, progress=False,
               overrides={"eval_steps": 2})
    proto = run(synthetic_env(ways=5, shots=1, queries=5), "protonet", steps=3, val_every=2, val_tasks=5,
                out_dir=out, progress=False, overrides={"channels": 8, "depth": 2})
    return {"out": out, "maml": maml, "protonet": proto}


def _leaves_equal(a: Any, b: Any) -> None:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("which", ["maml", "protonet"])
def test_load_returns_the_evaluated_state_and_the_same_predictions(runs: dict[str, Any], which: str) -> None:
    result = runs[which]
    loaded = metabench.load(result.path)
    assert loaded.spec.id == result.record["env"]["id"] and loaded.record["name"] == result.record["name"]
    assert loaded.learner.config.to_dict() == metabench.load(result.checkpoint.parent).learner.config.to_dict()
    _leaves_equal(loaded.state, result.state)  # the best-validation state the harness tested
    task = jax.tree_util.tree_map(lambda x: x[0], loaded.env.eval_tasks("test", 0, 1))
    # the three lines a user writes, on a support set of their own (here: a frozen test task's)
    adapted = loaded.learner.adapt(loaded.state, task.support, jax.random.key(0))
    out = loaded.learner.predict(loaded.state, adapted, task.query[0])
    np.testing.assert_array_equal(np.asarray(loaded.predict(loaded.adapt(task.support, jax.random.key(0)), task.query[0])),
                                  np.asarray(out))
    if which == "protonet":
        assert out.shape == (task.query[0].shape[0], 5)
    else:
        assert out.shape == task.query[1].shape
    # the loaded learner scores the frozen test tasks exactly as the run recorded
    curves = Evaluator(loaded.learner, loaded.env, 50).curves(loaded.state, "test")
    assert float(curves[:, -1].mean()) == pytest.approx(result.metric["mean"], rel=1e-6)


def test_a_run_dir_a_checkpoint_and_a_run_without_its_result_load_too(runs: dict[str, Any], tmp_path: Path) -> None:
    result = runs["maml"]
    for path in (result.checkpoint.parent, result.checkpoint, str(result.path)):
        _leaves_equal(metabench.load(path).state, result.state)
    out = tmp_path / "copy"
    shutil.copytree(runs["out"], out)
    (out / "results" / result.path.name).unlink()
    loaded = metabench.load(out / "runs" / result.record["name"])
    assert loaded.record is None
    _leaves_equal(loaded.state, result.state)


@pytest.fixture()
def copy(runs: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    """A writable copy of the maml run: (result JSON, checkpoint)."""
    out = tmp_path / "copy"
    shutil.copytree(runs["out"], out)
    name = runs["maml"].record["name"]
    return out / "results" / f"{name}.json", out / "runs" / name / "checkpoint.npz"


def _edit(path: Path, fn: Any) -> None:
    record = json.loads(path.read_text())
    fn(record)
    path.write_text(json.dumps(record))


def test_another_metabench_version_is_named(copy: tuple[Path, Path]) -> None:
    result, _ = copy
    _edit(result, lambda r: r["versions"].update(metabench="0.0.7"))
    with pytest.raises(metabench.LoadError, match=rf"metabench 0\.0\.7; this is metabench {metabench.__version__}"):
        metabench.load(result)
    with pytest.warns(UserWarning, match="0.0.7"):
        assert metabench.load(result, strict=False).state is not None


def test_a_changed_config_or_hash_is_named(copy: tuple[Path, Path]) -> None:
    result, _ = copy
    _edit(result, lambda r: r["learner"]["config"].update(meta_lr=0.5))
    with pytest.raises(metabench.LoadError, match=r"differs in meta_lr \(0\.5 recorded, 0\.001 now\)"):
        metabench.load(result)
    _edit(result, lambda r: (r["learner"]["config"].update(meta_lr=0.001), r["run"].update(steps=4)))
    with pytest.raises(metabench.LoadError, match="config hash recomputes"):
        metabench.load(result)


def test_a_corrupt_or_missing_checkpoint_is_named(copy: tuple[Path, Path]) -> None:
    result, ckpt = copy
    ckpt.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(CheckpointError, match=rf"{ckpt}.*corrupt"):
        metabench.load(result)
    ckpt.unlink()
    with pytest.raises(CheckpointError, match="does not exist"):
        metabench.load(result)


def test_bad_paths_and_overrides(copy: tuple[Path, Path], tmp_path: Path) -> None:
    result, _ = copy
    with pytest.raises(metabench.LoadError, match="does not exist"):
        metabench.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(metabench.LoadError, match="cannot be read as JSON"):
        metabench.load(bad)
    bad.write_text("{}")
    with pytest.raises(metabench.LoadError, match="not a metabench result record"):
        metabench.load(bad)
    with pytest.raises(metabench.ConfigError, match="may only locate data.*shots"):
        metabench.load(result, shots=10)
