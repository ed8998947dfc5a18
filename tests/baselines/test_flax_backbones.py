"""Flax backbones: bit-for-bit equal to the landed networks, the backbone table, user modules in learners."""

from __future__ import annotations

import json
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.baselines import backbones as B
from metabench.baselines._synthetic import synthetic_env
from metabench.baselines.backbone_registry import backbone_names, describe_backbone, module_model
from metabench.baselines.flax_backbones import (
    MLP,
    Conv4,
    ResNet12,
    conv4_from_flax,
    conv4_to_flax,
    mlp_from_flax,
)
from metabench.errors import ConfigError, UnknownIdError
from metabench.harness import config_hash, run
from metabench.learner import learner_help
from metabench.loading import LoadError

leaves = jax.tree_util.tree_leaves
REAL = os.environ.get("METABENCH_DATA")
REAL_LITE = REAL is not None and (Path(REAL) / "omniglot" / "images_background_small1.zip").is_file()


def same(a, b) -> bool:
    la, lb = leaves(a), leaves(b)
    return len(la) == len(lb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(la, lb))


class TinyNet(nn.Module):
    """A user's network: two strided flax convolutions, spatial mean, optional linear head."""

    features: int = 8
    n_out: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(2):
            x = nn.relu(nn.Conv(self.features, (3, 3), strides=2)(x))
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.n_out)(x) if self.n_out else x


class Stateful(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.BatchNorm(use_running_average=False)(x.reshape(x.shape[0], -1))


class WithLambda(nn.Module):
    act: object = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)


# -- bit for bit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(28, 28, 1), (84, 84, 3)])
@pytest.mark.parametrize("pool", ["max", "stride"])
def test_conv4_is_the_landed_network_bit_for_bit(shape, pool):
    key, x = jax.random.key(3), jax.random.uniform(jax.random.key(1), (4, *shape))
    landed = B.conv4_init(key, shape, channels=4, n_out=5, pool=pool)
    net = Conv4(channels=4, pool=pool, n_out=5)
    params = net.landed_init(key, shape)
    assert same(conv4_from_flax(params), landed) and same(conv4_to_flax(landed), params)
    got = jax.jit(lambda p, x: net.apply({"params": p}, x))(params, x)
    want = jax.jit(lambda p, x: B.conv4_apply(p, x, pool=pool))(landed, x)
    assert got.shape == (4, 5) and np.array_equal(got, want)
    # the embedding, with per-group batch statistics (ProtoNet's folded episodes)
    emb = Conv4(channels=4, pool=pool)
    got = jax.jit(lambda p, x: emb.apply({"params": p}, x, groups=2))(conv4_to_flax({"blocks": landed["blocks"]}), x)
    want = jax.jit(lambda p, x: B.conv4_embed(p, x, groups=2, pool=pool))({"blocks": landed["blocks"]}, x)
    assert np.array_equal(got, want)
    # flax's own init: other values, the same layout (so the converter runs them in the landed functions)
    own = jax.eval_shape(net.init, jax.random.key(0), x)["params"]
    assert jax.tree_util.tree_structure(own) == jax.tree_util.tree_structure(params)


def test_mlp_is_the_landed_network_bit_for_bit():
    key, x = jax.random.key(4), jax.random.uniform(jax.random.key(5), (10, 1), minval=-5, maxval=5)
    landed = B.mlp_init(key, (1, 40, 40, 1))
    net = MLP((40, 40, 1))
    params = net.landed_init(key, (1,))
    assert same(mlp_from_flax(params), landed)
    got = jax.jit(lambda p: net.apply({"params": p}, x))(params)
    assert np.array_equal(got, jax.jit(B.mlp_apply)(landed, x))


def test_named_conv4_in_learners_reproduces_the_default_network():
    """``backbone="conv4"``: the default's initial parameters and losses, bit for bit (ProtoNet, MAML)."""
    env = synthetic_env(5, 1, 3, classes=30, per_class=8, size=16)
    tasks = env.sample_tasks(jax.random.key(1), 2)
    default = metabench.make_learner("protonet", env, channels=8, meta_batch=2)
    named = metabench.make_learner("protonet", env, channels=8, meta_batch=2, backbone="conv4")
    p0, p1 = default.init(jax.random.key(0)).params, named.init(jax.random.key(0)).params
    assert same(conv4_from_flax(p1), p0)
    loss = lambda lrn, p: jax.jit(lambda p: lrn.loss(p, tasks)[0])(p)  # noqa: E731
    assert np.array_equal(loss(default, p0), loss(named, p1))
    d = metabench.make_learner("maml", env, channels=8)
    n = metabench.make_learner("maml", env, channels=8, backbone="conv4")
    assert n.config.pool == d.config.pool == "stride"  # grey images: Finn et al.'s strided network, both
    q0, q1 = d.init(jax.random.key(2)).params, n.init(jax.random.key(2)).params
    assert same(conv4_from_flax(q1), q0)
    x = tasks.query[0][0]
    assert np.array_equal(jax.jit(d.model.apply)(q0, x), jax.jit(n.model.apply)(q1, x))


def test_resnet12_shapes_and_one_step_on_84x84x3(cross_domain_root: Path):
    net = ResNet12(channels=(4, 6, 8, 10))
    x = jax.ShapeDtypeStruct((4, 84, 84, 3), jnp.float32)  # shapes only: the step below runs it for real
    params = jax.eval_shape(net.init, jax.random.key(1), x)["params"]
    assert sorted(params) == ["block0", "block1", "block2", "block3"]
    assert jax.eval_shape(net.apply, {"params": params}, x).shape == (4, 10)
    flat = ResNet12(channels=(4, 6, 8, 10), global_pool=False)
    assert jax.eval_shape(flat.apply, {"params": params}, x).shape == (4, 10 * 5 * 5)
    assert ResNet12().channels == (64, 160, 320, 640)  # Lee et al. 2019
    env = metabench.make(metabench.spec("mini-imagenet-5w1s").replace(eval_tasks=2), root=str(cross_domain_root), ways=2,
                         queries=1)
    tasks = env.sample_tasks(jax.random.key(2), 1)
    assert tasks.support[0].shape[-3:] == (84, 84, 3)
    learner = metabench.make_learner("protonet", env, backbone="resnet12", channels=2)
    assert learner.config.to_dict()["backbone"] == "resnet12" and learner.net.module.channels == (2, 5, 10, 20)
    _, m = jax.jit(learner.meta_train_step)(learner.init(jax.random.key(0)), tasks, jax.random.key(3))
    assert np.isfinite(float(m["loss"]))
    maml = metabench.make_learner("maml", env, backbone="resnet12", channels=2)  # built: its logits fit the 2 ways
    assert maml.model.module.n_out == 2 and maml.config.pool == "max"


# -- the table, descriptions, errors ----------------------------------------------------------------


def test_backbone_names_and_did_you_mean():
    assert {"conv4", "conv4-max", "conv4-stride", "mlp", "resnet12"} <= set(backbone_names())
    env = synthetic_env(5, 1, 2, classes=25, per_class=4, size=16)
    with pytest.raises(UnknownIdError, match="Did you mean: 'resnet12'"):
        metabench.make_learner("protonet", env, backbone="resnet-12")
    with pytest.raises(ConfigError, match="not a flax.linen.Module"):
        metabench.make_learner("protonet", env, backbone="metabench.baselines.backbones:conv4_init")
    with pytest.raises(ConfigError, match="flax.linen.Module instance"):
        metabench.make_learner("protonet", env, backbone=42)
    # an entry point names a user's module (the CLI's way)
    lrn = metabench.make_learner("protonet", env, backbone="metabench.baselines.flax_backbones:Conv4")
    assert lrn.net.module == Conv4()


def test_config_records_modules_by_class_and_fields():
    env = synthetic_env(5, 1, 2, classes=25, per_class=4, size=16)
    a = metabench.make_learner("protonet", env, backbone=TinyNet(4)).config
    b = metabench.make_learner("protonet", env, backbone=TinyNet(4)).config
    c = metabench.make_learner("protonet", env, backbone=TinyNet(6)).config
    d = metabench.make_learner("protonet", env).config
    desc = a.to_dict()["backbone"]
    assert desc == {"module": f"{TinyNet.__module__}:TinyNet", "fields": {"features": 4, "n_out": None}}
    json.dumps(a.to_dict())
    assert "backbone" not in d.hash_dict() and d.to_dict()["backbone"] is None  # the default keeps every hash
    h = lambda cfg: config_hash(env.spec.to_dict(), "protonet", cfg.hash_dict(), steps=1, val_every=0, val_tasks=1)  # noqa: E731
    assert h(a) == h(b) != h(c) != h(d)
    assert describe_backbone(Conv4(n_out=5))["fields"]["dtype"] == "float32"
    with pytest.raises(ConfigError, match="memory address or a lambda"):
        describe_backbone(WithLambda(act=lambda x: x))
    assert describe_backbone(WithLambda(act=jax.nn.relu))["fields"]["act"].endswith(":relu")

    class Local(nn.Module):
        def __call__(self, x):
            return x

    with pytest.raises(ConfigError, match="inside a function"):
        describe_backbone(Local())


def test_output_shape_mismatch_names_expected_and_actual():
    env = synthetic_env(5, 1, 2, classes=25, per_class=4, size=16)
    with pytest.raises(ConfigError, match=r"outputs of shape \(5, 7\); maml needs logits .* \(5, 5\).*Dense\(5\)"):
        metabench.make_learner("maml", env, backbone=TinyNet(4, n_out=7))
    with pytest.raises(ConfigError, match=r"outputs of shape \(15, 16, 16, 1\); protonet needs one embedding"):
        metabench.make_learner("protonet", env, backbone=nn.Dropout(0.0, deterministic=True))
    with pytest.raises(ConfigError, match="besides 'params'"):
        metabench.make_learner("protonet", env, backbone=Stateful())
    with pytest.raises(ConfigError, match="needs bn='batch'"):
        metabench.make_learner("baseline", env, backbone="conv4")
    assert metabench.make_learner("baseline", env, backbone="conv4", bn="batch", channels=4).features == 4
    with pytest.raises(ConfigError, match="MAML for RL"):
        metabench.make_learner("maml", metabench.make("nav2d-easy"), backbone="mlp")


def test_user_module_without_groups_is_vmapped_per_episode():
    """A module without ``groups`` folded over episodes: each group normalised on its own, like vmap."""
    m = module_model(TinyNet(3), (8, 8, 1))
    p = m.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (6, 8, 8, 1))
    np.testing.assert_array_equal(m.apply_grouped(p, x, 2), jnp.concatenate([m.apply(p, x[:3]), m.apply(p, x[3:])]))


# -- a user's module trains -------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.skipif(not REAL_LITE, reason="real Omniglot small zips not found under $METABENCH_DATA/omniglot")
@pytest.mark.parametrize("learner,overrides", [
    ("protonet", {"backbone": TinyNet(8)}),
    ("maml", {"backbone": TinyNet(8, n_out=5), "meta_batch": 2, "eval_steps": 1}),
])
def test_user_module_trains_on_omniglot_lite(learner, overrides, tmp_path):
    env = metabench.make(metabench.spec("omniglot-lite-5w1s").replace(eval_tasks=4), queries=3)
    losses = []
    result = run(env, learner, steps=4, val_every=0, out_dir=tmp_path, overrides=overrides, progress=False,
                 log_every=1, callback=lambda step, state, metrics: losses.append(float(metrics["loss"])))
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert 0.0 <= result.metric["mean"] <= 1.0, result.metric
    path = next((tmp_path / "results").glob("*.json"))
    record = json.loads(path.read_text())
    assert record["learner"]["config"]["backbone"]["module"].endswith(":TinyNet")
    assert record["learner"]["overrides"]["backbone"] == record["learner"]["config"]["backbone"]
    with pytest.raises(LoadError, match="flax module instance"):
        metabench.load(path)


SUPERVISED = ["protonet", "protonet-cosine", "maml", "maml-fo", "meta-lstm", "turtle-fo", "dmaml", "es-protonet",
              "es-maml", "baseline", "baseline-pp", "train-from-scratch", "pretrain-finetune"]


def test_every_supervised_learner_takes_a_backbone():
    env = synthetic_env(5, 1, 2, classes=25, per_class=4, size=16)
    for lid in SUPERVISED:
        extra = {"bn": "batch"} if lid.startswith(("baseline", "train-")) else {}
        learner = metabench.make_learner(lid, env, backbone=TinyNet(4, n_out=None if "proto" in lid or "base" in lid
                                                                         or "scratch" in lid else 5), **extra)
        assert learner.config.to_dict()["backbone"]["module"].endswith(":TinyNet"), lid
        assert "backbone" in learner.config.hash_dict(), lid
        assert "backbone" in learner_help(lid), lid


def test_regression_mlp_name_is_the_landed_mlp_and_cli_names_are_checked(tmp_path, capsys):
    from metabench.cli import main

    env = metabench.make("sinusoid-5s")
    d, n = metabench.make_learner("maml", env), metabench.make_learner("maml", env, backbone="mlp")
    assert same(mlp_from_flax(n.init(jax.random.key(0)).params), d.init(jax.random.key(0)).params)
    assert main(["run", "--env", "sinusoid-5s", "--learner", "maml", "--set", "backbone=mlpp", "--out", str(tmp_path)]) == 1
    assert "Did you mean: 'mlp'" in capsys.readouterr().err
