"""``MetaEnv.eval_hash`` is bound to the content of the frozen evaluation tasks: the bytes of every
array the learner sees (images as float32, labels), not only which images were drawn."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping

import jax
import numpy as np

import metabench
from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.spec import EnvSpec


class PoolEnv(ClassificationEnv):
    """A 3-way env over a given pool: classes 0-5 train, 6-8 val, 9-11 test (no rotations)."""

    def __init__(self, spec: EnvSpec, *, pool: ImagePool, **kw: int):
        self._pool = pool
        super().__init__(spec, **kw)

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        tables = {"train": SplitTable.of(range(6)), "val": SplitTable.of(range(6, 9)), "test": SplitTable.of(range(9, 12))}
        return self._pool, tables, "fixture"


def _pool(seed: int = 0) -> ImagePool:
    rng = np.random.default_rng(seed)
    return ImagePool.from_groups([rng.integers(0, 256, (6, 5, 5, 1), dtype=np.uint8) for _ in range(12)],
                                 [f"c{i}" for i in range(12)])


def _env(pool: ImagePool) -> PoolEnv:
    spec = EnvSpec(id="pool-3w2s-v0", entry_point=f"{__name__}:PoolEnv", kind="classification", eval_tasks=8)
    return PoolEnv(spec, pool=pool, ways=3, shots=2, queries=2)


def _row_of(pool: ImagePool, image: np.ndarray) -> int:
    """The pool row whose pixels are ``image * 255`` (exactly one)."""
    rows = np.flatnonzero((pool.images == np.round(image * 255).astype(np.uint8)).all(axis=(1, 2, 3)))
    assert rows.size == 1
    return int(rows[0])


def test_one_pixel_of_one_eval_task_changes_the_eval_hash() -> None:
    pool = _pool()
    env = _env(pool)
    task = env.eval_tasks("test", 3, 4)  # the 4th task of the frozen test set
    row = _row_of(pool, np.asarray(task.query[0][0, 1]))
    images = pool.images.copy()
    images[row, 2, 4, 0] ^= 1  # one pixel, one bit
    changed = _env(pool._replace(images=images))
    assert changed.eval_hash("test") != env.eval_hash("test")
    assert changed.eval_hash("val") == env.eval_hash("val")  # val tasks never draw a test class


def test_a_pixel_no_eval_task_shows_leaves_the_eval_hash_alone() -> None:
    pool = _pool()
    images = pool.images.copy()
    images[pool.offsets[0], 0, 0, 0] ^= 0xFF  # class 0 is a train class
    assert _env(pool._replace(images=images)).eval_hash("test") == _env(pool).eval_hash("test")


def test_eval_hash_is_sha256_of_the_task_arrays_as_the_learner_sees_them() -> None:
    env = _env(_pool())
    h = hashlib.sha256()
    for batch in env.iter_eval_tasks("test"):
        for leaf in jax.tree_util.tree_leaves(batch):
            arr = np.asarray(leaf)
            h.update(str((arr.dtype.str, arr.shape)).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    assert env.eval_hash("test") == h.hexdigest()
    x = env.eval_tasks("test").support[0]
    assert x.dtype == np.float32 and x.shape == (8, 6, 5, 5, 1)  # the float images, not indices


def test_eval_hash_is_the_same_in_a_fresh_process() -> None:
    child = "import metabench; print(metabench.make('sinusoid-5s').eval_hash('test'))"
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == metabench.make("sinusoid-5s").eval_hash("test")
