"""``classification.EpochSampler``: the per-epoch order path gives the per-step sampler's batches, bit for bit.

The harness computes each epoch's order once (``epoch_order``) and the step only slices and
gathers (``from_order``); committed transfer results were trained with the per-step
``permutation_slice`` path, so both must give the same batches and the same runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from metabench.baselines import transfer as T
from metabench.baselines._synthetic import synthetic_env
from metabench.classification import ClassificationEnv, EpochSampler, ImagePool, SplitTable
from metabench.spec import EnvSpec

TINY = {"channels": 4, "ft_epochs": 3, "batch_size": 8}


class _RGB(ClassificationEnv):
    """6 / 2 / 2 classes x 5 random 16x16x3 images (augmentation needs RGB)."""

    def _load(self) -> tuple[ImagePool, dict[str, SplitTable], str]:
        rng = np.random.default_rng(0)
        groups = [rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8) for _ in range(10)]
        tables = {"train": SplitTable.of(range(6)), "val": SplitTable.of(range(6, 8)), "test": SplitTable.of(range(8, 10))}
        return ImagePool.from_groups(groups, [f"c{i}" for i in range(10)]), tables, "rgb-test"


def _rgb_env() -> _RGB:
    return _RGB(EnvSpec(id="rgb-test-2w1s-v0", entry_point="x:_RGB", kind="classification", eval_tasks=4),
                ways=2, shots=1, queries=2)


def _assert_same_batches(env: Any, n: int, augment: bool, steps: int) -> None:
    sample, data = env.example_sampler(n, epochs=True, augment=augment)
    assert isinstance(sample, EpochSampler)
    per_step = jax.jit(sample)
    order_of = jax.jit(sample.epoch_order)
    from_order = jax.jit(sample.from_order)
    key = jax.random.key(7)
    for t in range(steps):
        order = order_of(key, np.int32(t // sample.steps_per_epoch))
        a, b = per_step(data, key, np.int32(t)), from_order(data, order, key, np.int32(t))
        np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
        np.testing.assert_array_equal(np.asarray(a.y), np.asarray(b.y))


def test_from_order_equals_the_per_step_sampler_over_epochs() -> None:
    env = synthetic_env(5, 1, 3, classes=15, per_class=8, rotations=True)  # 288 examples, rotation classes
    _assert_same_batches(env, 40, False, 2 * (288 // 40) + 3)  # 7 steps per epoch: two epoch boundaries


def test_from_order_equals_the_per_step_sampler_with_augmentation() -> None:
    _assert_same_batches(_rgb_env(), 7, True, 2 * (30 // 7) + 1)


def test_order_is_the_full_permutation_and_covers_the_epoch() -> None:
    env = synthetic_env(5, 1, 3, classes=15, per_class=8, rotations=True)
    sample, _ = env.example_sampler(16, epochs=True)
    order = np.asarray(sample.epoch_order(jax.random.key(3), 2))
    assert order.dtype == np.int32 and sorted(order.tolist()) == list(range(288))
    np.testing.assert_array_equal(order, np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(3), 2), 288)))


@pytest.mark.slow
def test_harness_runs_equal_the_per_step_sampler_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run across an epoch boundary (36 steps per epoch), and one resumed mid-epoch 2, equal a run
    whose hook hides the epoch path (the per-step sampler: how the committed results were trained)."""
    from metabench.harness import RunInterrupted, run

    env = synthetic_env(5, 1, 3, classes=15, per_class=8, rotations=True)
    small = dict(steps=45, seed=1, progress=False, overrides={**TINY}, val_every=0)
    new = run(env, "baseline", out_dir=tmp_path / "new", **small)

    def stop(t: int, state: Any, metrics: Any) -> None:
        if t == 40:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run(env, "baseline", out_dir=tmp_path / "resumed", callback=stop, **small)
    resumed = run(env, "baseline", out_dir=tmp_path / "resumed", resume=True, **small)

    hook = T.TransferLearner.train_batches

    def per_step_hook(self: Any, env: Any) -> tuple[Any, Any]:
        sample, data = hook(self, env)
        return (lambda d, k, t: sample(d, k, t)), data  # no from_order: the harness calls it per step

    monkeypatch.setattr(T.TransferLearner, "train_batches", per_step_hook)
    old = run(env, "baseline", out_dir=tmp_path / "old", **small)
    for r in (new, resumed):
        for a, b in zip(jax.tree_util.tree_leaves(old.final_state), jax.tree_util.tree_leaves(r.final_state)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert r.metric == old.metric
