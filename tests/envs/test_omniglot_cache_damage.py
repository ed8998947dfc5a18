"""The two cases of issue 29 on the real omniglot-lite cache: ``images.npy`` with 1 MiB inverted
in place, and ``counts.npy`` edited in place (same sizes). The next ``make`` must rebuild the
cache with a warning and give exactly the clean tasks, never sample from the damaged files."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest

import metabench
from metabench.data.integrity import VERIFY_ENV

REAL = os.environ.get("METABENCH_DATA")
REAL_LITE = REAL is not None and (Path(REAL) / "omniglot" / "images_background_small1.zip").is_file()

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not REAL_LITE, reason="real Omniglot small zips not found under $METABENCH_DATA/omniglot"),
]


def _damage(path: Path, which: str) -> None:
    arr = np.load(path, mmap_mode="r")
    start = path.stat().st_size - arr.nbytes  # the data, after the .npy header
    m = np.memmap(path, dtype=np.uint8, mode="r+")
    if which == "images":
        m[start : start + (1 << 20)] = 255 - m[start : start + (1 << 20)]
    else:  # counts: move one image from the first character to the second (the sum stays right)
        c = np.array(arr)
        c[0] -= 1
        c[1] += 1
        m[start:] = c.view(np.uint8)
    m.flush()
    del m


@pytest.mark.parametrize("which", ["images", "counts"])
def test_damaged_lite_cache_is_rebuilt_and_gives_the_clean_tasks(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    env = metabench.make("omniglot-lite-5w5s")
    clean_images = np.array(env._images)
    clean_eval = jax.tree_util.tree_map(np.asarray, env.eval_tasks("test", 0, 4))
    path = env.cache_info.path / f"{which}.npy"
    size = path.stat().st_size
    _damage(path, which)
    assert path.stat().st_size == size

    with caplog.at_level("WARNING", logger="metabench.data"):
        env2 = metabench.make("omniglot-lite-5w5s")
    assert env2.cache_info.built, f"{which}.npy damaged in place was loaded without a rebuild"
    assert f"{which}.npy: content hash mismatch" in caplog.text
    assert env2.spec.data_hash == env.spec.data_hash
    np.testing.assert_array_equal(np.asarray(env2._images), clean_images)
    again = jax.tree_util.tree_map(np.asarray, env2.eval_tasks("test", 0, 4))
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, clean_eval)
