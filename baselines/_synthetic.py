"""A synthetic, Omniglot-shaped classification env for tests and benchmarks (no data needed).

Each base class is a fixed random binary "glyph" (a seeded numpy Generator), and its
instances are that glyph with a few random pixels flipped, so the classes are learnable
and a few training steps visibly reduce the loss. Not registered: build it with
``synthetic_env(...)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.spec import EnvSpec


class SyntheticImages(ClassificationEnv):
    """``classes`` base classes x ``per_class`` images of ``size x size x 1``, split 60/20/20%."""

    def __init__(
        self, spec: EnvSpec, *, classes: int = 30, per_class: int = 20, size: int = 28, flip: float = 0.05,
        seed: int = 0, rotations: bool = False, **kw: Any,
    ):
        self._cfg = (classes, per_class, size, flip, seed, rotations)
        super().__init__(spec, **kw)

    def _load(self) -> tuple[ImagePool, dict[str, SplitTable], str]:
        classes, per_class, size, flip, seed, rotations = self._cfg
        rng = np.random.default_rng(seed)
        glyphs = rng.random((classes, size, size, 1)) < 0.3
        noise = rng.random((classes, per_class, size, size, 1)) < flip
        images = ((glyphs[:, None] ^ noise) * 255).astype(np.uint8)
        pool = ImagePool.from_groups(list(images), [f"glyph{i:03d}" for i in range(classes)])
        a, b = int(0.6 * classes), int(0.8 * classes)
        rot = (0, 1, 2, 3) if rotations else (0,)
        tables = {
            "train": SplitTable.of(range(a), rot),
            "val": SplitTable.of(range(a, b), rot),
            "test": SplitTable.of(range(b, classes), rot),
        }
        return pool, tables, f"synthetic-{classes}-{per_class}-{size}-{flip}-{seed}"


def synthetic_env(ways: int = 5, shots: int = 1, queries: int = 15, **kw: Any) -> SyntheticImages:
    """An Omniglot-shaped (28x28x1) synthetic env, ``ways``-way ``shots``-shot."""
    spec = EnvSpec(
        id=f"synthetic-{ways}w{shots}s-v0",
        entry_point="metabench.baselines._synthetic:SyntheticImages",
        kind="classification",
        kwargs={"ways": ways, "shots": shots, "queries": queries, **kw},
        version=0,
        eval_tasks=20,
        eval_seed=0,
    )
    return SyntheticImages(spec, ways=ways, shots=shots, queries=queries, **kw)
