"""The MetaEnv contract on sinusoid and on a synthetic image-classification env."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.errors import ConfigError
from metabench.spec import EnvSpec
from metabench.testing import check_meta_env, task_digest


class Synthetic(ClassificationEnv):
    """Random 6x6 grey images; base class b has 8 + b % 3 images (unequal counts)."""

    def __init__(self, spec: EnvSpec, *, ways: int, shots: int, queries: int = 2, rotate: bool = True):
        self._rotate = rotate
        super().__init__(spec, ways=ways, shots=shots, queries=queries)

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        rng = np.random.default_rng(0)
        groups = [rng.integers(0, 256, size=(8 + b % 3, 6, 6, 1), dtype=np.uint8) for b in range(12)]
        pool = ImagePool.from_groups(groups, [f"c{b}" for b in range(12)])
        rots = (0, 1, 2, 3) if self._rotate else (0,)
        tables = {
            "train": SplitTable.of(range(0, 6), rots),
            "val": SplitTable.of(range(6, 9), rots),
            "test": SplitTable.of(range(9, 12), rots),
        }
        self.pool = pool
        return pool, tables, "synthetic"


def make_synthetic(**kw) -> Synthetic:
    spec = EnvSpec(id="synthetic-3w2s-v0", entry_point=f"{__name__}:Synthetic", kind="classification", eval_tasks=20)
    return Synthetic(spec, **{"ways": 3, "shots": 2, **kw})


def test_synthetic_env_passes_the_checker() -> None:
    check_meta_env(make_synthetic(), second_process=False)


def test_sinusoid_passes_the_checker_in_two_processes() -> None:
    hashes = check_meta_env(metabench.make("sinusoid-5s"))
    assert set(hashes) == {"val", "test"}


def test_every_image_of_a_class_carries_its_rotation() -> None:
    env = make_synthetic(ways=3, shots=2, queries=2)
    pool = env.pool
    stored = {b: pool.images[pool.offsets[b] : pool.offsets[b] + pool.counts[b], :, :, 0] for b in range(12)}
    for seed in range(5):
        task = env.sample_task(jax.random.key(seed), "train")
        x = np.concatenate([np.asarray(task.support[0]), np.asarray(task.query[0])])
        y = np.concatenate([np.asarray(task.support[1]), np.asarray(task.query[1])])
        for label in range(3):
            imgs = np.rint(x[y == label, :, :, 0] * 255).astype(np.uint8)
            # find (base, k) such that every image is rot90(stored image, k) of that base
            matches = {
                (b, k)
                for b in stored
                for k in range(4)
                if all(any(np.array_equal(np.rot90(s, k), im) for s in stored[b]) for im in imgs)
            }
            assert len(matches) >= 1, f"images of label {label} do not share one base class and rotation"
            # images are distinct draws of the class
            assert len({im.tobytes() for im in imgs}) == len(imgs)


def test_labels_are_remapped_at_random_per_task() -> None:
    env = make_synthetic(rotate=False)
    firsts = {task_digest(env.sample_task(jax.random.key(s), "train").support[0][0]) for s in range(8)}
    assert len(firsts) > 1


def test_ways_larger_than_split_is_rejected_with_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"ways=13 but split 'val' has only 12 classes; use ways <= 12"):
        make_synthetic(ways=13)


def test_shots_plus_queries_larger_than_class_is_rejected_with_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"shots \+ queries = 7 \+ 2 = 9 .* only 8 images; use shots \+ queries <= 8"):
        make_synthetic(shots=7)


def test_unknown_split_is_rejected() -> None:
    env = make_synthetic()
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        env.sample_task(jax.random.key(0), "validation")


def test_sinusoid_draws_follow_finn_et_al() -> None:
    env = metabench.make("sinusoid-10s", queries=20)
    keys = jax.random.split(jax.random.key(0), 2000)
    amp, phase = jax.vmap(env.task_params)(keys)
    assert 0.1 <= float(amp.min()) and float(amp.max()) <= 5.0
    assert 0.0 <= float(phase.min()) and float(phase.max()) <= float(jnp.pi)
    assert abs(float(amp.mean()) - 2.55) < 0.1
    tasks = env.sample_tasks(jax.random.key(0), 2000)
    x = tasks.support[0]
    assert x.shape == (2000, 10, 1) and tasks.query[0].shape == (2000, 20, 1)
    assert -5.0 <= float(x.min()) and float(x.max()) <= 5.0
    # y is exactly A sin(x - phase) for the task's own parameters
    y = amp[:, None, None] * jnp.sin(x - phase[:, None, None])
    np.testing.assert_allclose(np.asarray(y), np.asarray(tasks.support[1]), rtol=1e-6, atol=1e-6)


def test_eval_set_is_frozen_and_content_hashed() -> None:
    a = metabench.make("sinusoid-5s")
    b = metabench.make("sinusoid-5s")
    assert a.eval_hash("test") == b.eval_hash("test")
    assert a.eval_hash("test") != a.eval_hash("val")
    assert a.num_eval_tasks == 600
    batches = list(a.iter_eval_tasks("test", batch_size=128))
    assert sum(x.support[0].shape[0] for x in batches) == 600
    # the eval set depends on the spec, not on the sizes overriding it
    c = metabench.make("sinusoid-5s", queries=3)
    assert c.eval_hash("test") != a.eval_hash("test")


def test_describe_is_json_able() -> None:
    import json

    info = metabench.make("sinusoid-5s").describe()
    json.dumps(info)
    assert info["task_shapes"]["support"][0] == [[5, 1], "float32"]
    assert info["contract_version"] == metabench.CONTRACT_VERSION
