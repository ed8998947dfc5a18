"""Checkpoint files: round trip (typed keys, scalars), shape checks, corruption, atomicity."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabench.harness import CheckpointError, load_checkpoint, read_meta, save_checkpoint


class S(NamedTuple):
    w: jax.Array
    key: jax.Array
    count: int
    host: np.ndarray


def make(seed: int) -> S:
    k = jax.random.key(seed)
    return S(jax.random.normal(k, (3, 2)), jax.random.split(k, 2), seed, np.arange(4, dtype=np.int16) + seed)


def test_round_trip(tmp_path: Path) -> None:
    a, b = make(1), make(2)
    path = save_checkpoint(tmp_path / "c.npz", {"state": a, "best": b}, {"step": 7, "book": {"x": [1.5]}})
    trees, meta = load_checkpoint(path, {"state": make(0), "best": make(0)})
    assert meta == {"step": 7, "book": {"x": [1.5]}} and read_meta(path)["step"] == 7
    for got, want in ((trees["state"], a), (trees["best"], b)):
        np.testing.assert_array_equal(got.w, want.w)
        assert jax.dtypes.issubdtype(got.key.dtype, jax.dtypes.prng_key)
        np.testing.assert_array_equal(jax.random.key_data(got.key), jax.random.key_data(want.key))
        assert got.count == want.count and isinstance(got.count, int)
        np.testing.assert_array_equal(got.host, want.host)
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_shape_mismatch_is_explained(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.npz", {"state": make(1)}, {})
    other = make(0)._replace(w=jnp.zeros((4, 2)))
    with pytest.raises(CheckpointError, match=r"leaf state/0 has shape \(3, 2\) float32.*expects \(4, 2\)"):
        load_checkpoint(path, {"state": other})
    with pytest.raises(CheckpointError, match="has 4 leaves, the learner's state has 1"):
        load_checkpoint(path, {"state": (jnp.zeros(2),)})
    with pytest.raises(CheckpointError, match="has no tree 'best'"):
        load_checkpoint(path, {"best": make(0)})


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04garbage"])
def test_corrupt_or_missing_file_is_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is corrupt"):
        load_checkpoint(path, {"state": make(0)})
    with pytest.raises(CheckpointError, match="does not exist"):
        read_meta(tmp_path / "missing.npz")


def test_truncated_file_is_named(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.npz", {"state": make(1)}, {"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {path}"):
        load_checkpoint(path, {"state": make(0)})
