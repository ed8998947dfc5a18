"""Cross-domain envs (Chen et al. 2019) on generated miniImageNet pickles and a CUB folder.

miniImageNet fixture images carry their global class index in pixel [0, 0, 0]; CUB fixture
images are filled with a colour encoding their class index (some classes are grayscale).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import metabench
import metabench_tests_fixtures_images as fx  # registered by tests/conftest.py
from metabench.envs import cub as C
from metabench.envs import mini_imagenet as M
from metabench.envs.cross_domain import CrossDomain
from metabench.envs.mini_imagenet_splits import RAVI_SPLIT
from metabench.errors import ConfigError, DataError
from metabench.testing import check_meta_env




SPLITS = ("train", "val", "test")
MINI = [w for s in SPLITS for w in RAVI_SPLIT[s]]


@pytest.fixture(scope="module")
def root(cross_domain_root: Path) -> Path:
    return cross_domain_root


def _make(env_id: str, root: Path, **kw):
    return metabench.make(metabench.spec(env_id).replace(eval_tasks=10), root=str(root), queries=3, **kw)


def _mini_class(x: np.ndarray) -> int:
    return int(round(float(x[0, 0, 0]) * 255))


def _cub_class(x: np.ndarray) -> int:
    return fx.colour_class(x[42, 42])


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["mini-imagenet-to-cub-5w1s", "cub-to-mini-imagenet-5w1s"])
def test_both_directions_pass_the_checker(root: Path, env_id: str) -> None:
    check_meta_env(_make(env_id, root), second_process=env_id.startswith("mini"))


def test_mini_imagenet_to_cub_splits(root: Path) -> None:
    env = _make("mini-imagenet-to-cub-5w1s", root)
    chen = C.chen_split()
    cub_names = fx.cub_class_names()
    assert [env.num_classes(s) for s in SPLITS] == [100, 50, 50]
    assert [n.split("/rot")[0] for n in env.class_names("train")] == [f"mini-imagenet/{w}" for w in MINI]
    assert [n.split("/rot")[0] for n in env.class_names("val")] == [f"cub/{cub_names[i]}" for i in chen["val"]]
    assert [n.split("/rot")[0] for n in env.class_names("test")] == [f"cub/{cub_names[i]}" for i in chen["test"]]
    # the pool holds every miniImageNet image and only the CUB val + novel classes
    assert env._images.shape == (100 * 4 + 100 * 4, 84, 84, 3)
    train = env.sample_task(jax.random.key(0), "train")
    assert {_mini_class(x) for x in np.asarray(train.support[0])} <= set(range(100))
    for split in ("val", "test"):
        task = env.sample_task(jax.random.key(1), split)
        seen = {_cub_class(x) for x in np.asarray(task.query[0])}
        assert len(seen) == 5 and seen <= set(chen[split].tolist())


def test_cub_to_mini_imagenet_splits(root: Path) -> None:
    env = _make("cub-to-mini-imagenet-5w5s", root, shots=1)
    assert [env.num_classes(s) for s in SPLITS] == [200, 16, 20]
    assert [n.split("/rot")[0] for n in env.class_names("train")] == [f"cub/{n}" for n in fx.cub_class_names()]
    assert [n.split("/rot")[0] for n in env.class_names("val")] == [f"mini-imagenet/{w}" for w in RAVI_SPLIT["val"]]
    assert [n.split("/rot")[0] for n in env.class_names("test")] == [f"mini-imagenet/{w}" for w in RAVI_SPLIT["test"]]
    assert env._images.shape == (200 * 4 + 36 * 4, 84, 84, 3)
    train = env.sample_task(jax.random.key(0), "train")
    assert {_cub_class(x) for x in np.asarray(train.support[0])} <= set(range(200))
    bounds = {"val": set(range(64, 80)), "test": set(range(80, 100))}
    for split in ("val", "test"):
        task = env.sample_task(jax.random.key(1), split)
        (sx, sy), (qx, qy) = task.support, task.query
        seen = {_mini_class(x) for x in np.asarray(qx)}
        assert len(seen) == 5 and seen <= bounds[split]
        # support and query of one label show one class
        for label in range(5):
            s_cls = {_mini_class(x) for x in np.asarray(sx)[np.asarray(sy) == label]}
            q_cls = {_mini_class(x) for x in np.asarray(qx)[np.asarray(qy) == label]}
            assert len(s_cls) == 1 and s_cls == q_cls


def test_spec_records_both_data_hashes(root: Path) -> None:
    env = _make("mini-imagenet-to-cub-5w1s", root)
    mini, cub = M.load_mini_imagenet(root).data_hash, C.load_cub(root).data_hash
    assert env.spec.data_hash == f"mini-imagenet:{mini};cub:{cub}"
    assert env.source_hashes == {"mini-imagenet": mini, "cub": cub}
    other = _make("cub-to-mini-imagenet-5w1s", root)
    assert other.spec.data_hash == env.spec.data_hash  # same data, same record, whatever the direction
    assert other.spec.kwargs["source"] == "cub" and other.spec.kwargs["target"] == "mini-imagenet"


def test_bad_directions_and_limits(root: Path) -> None:
    spec = metabench.spec("mini-imagenet-to-cub-5w1s")
    with pytest.raises(ConfigError, match="two different datasets"):
        CrossDomain(spec, ways=5, shots=1, source="cub", target="cub", root=str(root))
    with pytest.raises(ConfigError, match="two different datasets"):
        CrossDomain(spec, ways=5, shots=1, source="omniglot", target="cub", root=str(root))
    with pytest.raises(ConfigError, match=r"ways=17 but split 'val' has only 16 classes"):
        _make("cub-to-mini-imagenet-5w1s", root, ways=17)
    with pytest.raises(ConfigError, match=r"use shots \+ queries <= 4"):
        _make("mini-imagenet-to-cub-5w5s", root)


def test_missing_dataset_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "cache"))
    fx.cub_folder(tmp_path, per_class=1, size=(8, 8))
    with pytest.raises(DataError, match="miniImageNet not found"):
        metabench.make("cub-to-mini-imagenet-5w1s", root=tmp_path)
    with pytest.raises(DataError, match="miniImageNet not found"):
        metabench.make("mini-imagenet-to-cub-5w1s", root=tmp_path)
