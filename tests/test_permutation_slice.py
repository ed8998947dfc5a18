"""``classification.permutation_slice`` equals a slice of ``jax.random.permutation`` (the epoch sampler's order)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from metabench.classification import permutation_slice


@pytest.mark.parametrize("total, n", [(1, 1), (2, 2), (7, 3), (100, 16), (12240, 16)])
def test_slices_equal_the_full_permutation(total: int, n: int) -> None:
    fn = jax.jit(permutation_slice, static_argnums=(1, 3))
    for seed in range(8):
        key = jax.random.key(seed)
        full = np.asarray(jax.random.permutation(key, total))
        for start in sorted({0, (seed * n) % (total - n + 1), total - n}):
            np.testing.assert_array_equal(np.asarray(fn(key, total, np.int32(start), n)), full[start : start + n])


def test_colliding_keys_take_the_full_shuffle() -> None:
    """At 2**16 keys a round's uint32 keys collide about half the time: both branches are exercised."""
    total, n = 2**16, 16
    fn = jax.jit(permutation_slice, static_argnums=(1, 3))
    collided = 0
    for seed in range(6):  # seeds 1 and 4 collide in the second round, the others in none
        key = jax.random.key(seed)
        k, any_tie = key, False
        for _ in range(2):  # the two rounds of 2**16 keys
            k, sub = jax.random.split(k)
            any_tie |= len(np.unique(np.asarray(jax.random.bits(sub, (total,), np.uint32)))) < total
        collided += any_tie
        full = np.asarray(jax.random.permutation(key, total))
        np.testing.assert_array_equal(np.asarray(fn(key, total, np.int32(1000), n)), full[1000 : 1000 + n])
    assert 0 < collided < 6
