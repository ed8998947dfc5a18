"""Interrupted runs resume to exactly the result of an uninterrupted run (same seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from metabench.harness import CheckpointError, RunInterrupted, read_meta, run

SMALL = dict(steps=12, val_every=4, val_tasks=10, progress=False)


def leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree_util.tree_leaves(tree)]


def assert_same_result(a: Any, b: Any) -> None:
    for x, y in zip(leaves(a.final_state), leaves(b.final_state), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(leaves(a.state), leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.metric == b.metric
    assert a.record["curves"] == b.record["curves"]
    assert a.record["validation"] == b.record["validation"]
    assert a.record["train"]["final_loss"] == b.record["train"]["final_loss"]


def interrupt_at(step: int, exc: type[BaseException]) -> Any:
    def callback(t: int, state: Any, metrics: Any) -> None:
        if t == step:
            raise exc("injected")
    return callback


def test_ctrl_c_checkpoints_and_resume_matches(baseline: Any, sine_env: Any, tmp_path: Path) -> None:
    # step 6 is between validations (4, 8) and between loss flushes (log_every=4)
    with pytest.raises(RunInterrupted) as e:
        run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path, log_every=4,
            callback=interrupt_at(6, KeyboardInterrupt), **SMALL)
    assert "--resume" in str(e.value) and "step 6/12" in str(e.value)
    assert read_meta(e.value.checkpoint)["step"] == 6
    assert not (tmp_path / "results").exists()
    resumed = run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path, resume=True, log_every=4, **SMALL)
    assert resumed.record["run"]["resumed_from"] == 6
    assert_same_result(baseline, resumed)


def test_crash_resumes_from_the_periodic_checkpoint(baseline: Any, sine_env: Any, tmp_path: Path) -> None:
    # the crash at step 10 loses steps 9-10; the checkpoint at step 8 was taken right after validation
    with pytest.raises(RuntimeError, match="injected"):
        run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path, checkpoint_every=4,
            callback=interrupt_at(10, RuntimeError), **SMALL)
    (ckpt,) = (tmp_path / "runs").glob("*/checkpoint.npz")
    assert read_meta(ckpt)["step"] == 8
    resumed = run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path, checkpoint_every=4, resume=True, **SMALL)
    assert resumed.record["run"]["resumed_from"] == 8
    assert_same_result(baseline, resumed)
    # resuming a finished run only re-evaluates
    again = run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path, checkpoint_every=4, resume=True, **SMALL)
    assert again.record["run"]["resumed_from"] == 12
    assert_same_result(baseline, again)


def test_corrupt_checkpoint_is_named(baseline: Any, sine_env: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "runs" / baseline.record["name"] / "checkpoint.npz"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match=f"checkpoint {ckpt} is corrupt"):
        run(sine_env, "tiny-ridge", seed=0, out_dir=tmp_path, resume=True, **SMALL)
