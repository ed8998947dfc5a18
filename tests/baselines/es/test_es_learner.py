"""The ES learner wrapper (single device): toy inner learner, ProtoNet/MAML wiring, registry, errors."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import metabench
from metabench.errors import ConfigError
from metabench.learner import learner_registry, make_learner

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toy import ESToy  # noqa: E402


@pytest.fixture(scope="module")
def env():
    return metabench.make("sinusoid-5s")


@pytest.fixture(scope="module")
def batch(env):
    return env.sample_tasks(jax.random.key(123), 16)


def run(learner, batch, steps: int, seed: int = 0):
    state = learner.init(jax.random.key(seed))
    history = []
    for i in range(steps):
        state, metrics = learner.meta_train_step(state, batch, jax.random.key(1000 + i))
        history.append({k: float(v) for k, v in metrics.items()})
    return state, history


def true_loss(learner, state, batch) -> float:
    return float(learner._meta_loss(learner.meta_params(state), batch, jax.random.key(0)))


def optimal_loss(batch) -> float:
    """Least-squares minimum of the toy meta-loss on ``batch``."""
    from toy import features

    x, y = batch.query
    phi = np.asarray(features(x)).reshape(-1, 3)
    w, *_ = np.linalg.lstsq(phi, np.asarray(y).reshape(-1, 1), rcond=None)
    return float(np.mean((phi @ w - np.asarray(y).reshape(-1, 1)) ** 2))


@pytest.mark.parametrize(
    "options",
    [
        dict(estimator="wsr", population=32, sigma=0.1, alpha=1.0),
        dict(estimator="wsr", population=32, sigma=0.1, alpha=0.05, es_optimizer="adam"),
        dict(estimator="fd", population=0, alpha=0.2),
        dict(estimator="evosax", strategy="Open_ES", population=32, sigma=0.1, alpha=0.1),
        dict(estimator="evosax", strategy="SNES", population=32, sigma=0.1, alpha=0.1),
    ],
    ids=lambda o: f"{o['estimator']}-{o.get('strategy', o.get('es_optimizer', 'sgd'))}",
)
def test_es_reduces_meta_loss_on_a_fixed_batch(env, batch, options) -> None:
    learner = ESToy(env, ESToy.Config(**options))
    state0 = learner.init(jax.random.key(0))
    state, history = run(learner, batch, 40)
    best = optimal_loss(batch)
    excess0, excess = true_loss(learner, state0, batch) - best, true_loss(learner, state, batch) - best
    assert excess0 > 0.1 and excess < 0.5 * excess0, (excess0, excess)
    assert all(h["collapsed"] == 0.0 and h["collapse_step"] == -1 for h in history)
    assert int(state.step) == 40


def test_deterministic(env, batch) -> None:
    learner = ESToy(env, ESToy.Config(population=16, sigma=0.1, alpha=0.1))
    a, _ = run(learner, batch, 3)
    b, _ = run(learner, batch, 3)
    np.testing.assert_array_equal(np.asarray(a.mu), np.asarray(b.mu))
    c, _ = run(learner, batch, 3, seed=1)
    assert not np.array_equal(np.asarray(a.mu), np.asarray(c.mu))


@pytest.mark.parametrize("estimator", ["wsr", "evosax"])
def test_nan_fitness_collapses_without_crashing(env, batch, estimator) -> None:
    # every candidate with |w| > 0.5 has NaN loss: sigma=1 makes some of them at step 0
    learner = ESToy(env, ESToy.Config(estimator=estimator, population=16, sigma=1.0, alpha=0.1, nan_after=0.5))
    state0 = learner.init(jax.random.key(0))
    state, history = run(learner, batch, 4)
    assert [h["collapsed"] for h in history] == [1.0] * 4
    assert [h["collapse_step"] for h in history] == [0] * 4
    assert all(np.isfinite(h["loss"]) for h in history)  # the harness stops on a non-finite loss
    np.testing.assert_array_equal(np.asarray(state.mu), np.asarray(state0.mu))  # the state stopped updating
    assert int(state.step) == 4 and bool(state.collapsed)
    curve = learner.eval_curve(state, jax.tree.map(lambda x: x[0], batch), jax.random.key(0))
    assert curve.shape == (1,) and bool(jnp.isfinite(curve).all())


def test_collapse_latches(env, batch) -> None:
    """A collapse after healthy steps: earlier updates are kept, later ones are not applied."""
    learner = ESToy(env, ESToy.Config(population=16, sigma=0.1, alpha=0.1))
    state, _ = run(learner, batch, 2)
    nan_batch = batch._replace(query=(batch.query[0], batch.query[1] * jnp.nan))
    state1, m1 = learner.meta_train_step(state, nan_batch, jax.random.key(5))
    state2, m2 = learner.meta_train_step(state1, batch, jax.random.key(6))
    assert float(m1["collapsed"]) == 1.0 and int(m1["collapse_step"]) == 2
    assert float(m2["collapsed"]) == 1.0 and int(m2["collapse_step"]) == 2
    assert np.isfinite(float(m1["loss"])) and np.isfinite(float(m2["loss"]))
    assert float(m1["loss"]) == float(state.last_loss)  # no finite candidate: the previous value
    np.testing.assert_array_equal(np.asarray(state2.mu), np.asarray(state.mu))


def test_config_errors(env) -> None:
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        ESToy(env, ESToy.Config(sigma=0.0))
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        ESToy(env, ESToy.Config(estimator="evosax", sigma=-1.0))
    with pytest.raises(ConfigError, match="number of parameters \\+ 1 = 4"):
        ESToy(env, ESToy.Config(estimator="fd", population=3))
    with pytest.raises(ConfigError, match=r"estimator='backprop' is not a choice"):
        ESToy(env, ESToy.Config(estimator="backprop"))
    with pytest.raises(ConfigError, match="Did you mean|did you mean"):
        ESToy(env, ESToy.Config(estimator="evosax", strategy="Open_Es"))
    with pytest.raises(ConfigError, match="alpha"):
        ESToy(env, ESToy.Config(alpha=0.0))
    with pytest.raises(ConfigError, match="'pop'"):
        ESToy(env, ESToy.Config(), mesh=Mesh(np.array(jax.devices()[:1]), ("data",)))
    with pytest.raises(ConfigError, match="antithetic applies to the WSR estimator"):
        ESToy(env, ESToy.Config(estimator="evosax", antithetic=True))
    with pytest.raises(ConfigError, match="WSR only"):
        ESToy(env, ESToy.Config(estimator="fd", population=0, antithetic=True))
    assert ESToy(env, ESToy.Config(estimator="fd", population=0)).population == 4  # D + 1


ES_IDS = ("es-protonet", "fd-protonet", "es-maml", "evosax-protonet")


def test_registry_ids() -> None:
    for id_ in ES_IDS:
        assert id_ in learner_registry, id_
        assert learner_registry[id_].entry_point.startswith("metabench.baselines.es.")


@pytest.fixture(scope="module")
def image_env():
    from metabench.baselines._synthetic import synthetic_env

    return synthetic_env(ways=3, shots=1, queries=2, classes=20, size=8)


@pytest.mark.parametrize(
    "id_, overrides",
    [
        ("es-protonet", dict(channels=4, depth=2, population=4, distance="cosine")),
        pytest.param(
            "evosax-protonet",
            dict(channels=4, depth=2, population=4, strategy="SNES", distance="cosine"),
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "es-maml",
            dict(channels=4, depth=2, population=4, inner_steps=1, eval_steps=1, meta_batch=2),
            marks=pytest.mark.slow,
        ),
    ],
)
def test_wraps_protonet_and_maml(image_env, id_, overrides) -> None:
    learner = make_learner(id_, image_env, **overrides)
    state = learner.init(jax.random.key(0))
    meta_batch = learner.inner.config.meta_batch
    tasks = image_env.sample_tasks(jax.random.key(1), meta_batch)
    state2, metrics = learner.meta_train_step(state, tasks, jax.random.key(2))
    assert set(metrics) >= {"loss", "collapsed", "collapse_step"}
    assert bool(jnp.isfinite(metrics["loss"])) and float(metrics["collapsed"]) == 0.0
    assert float(jnp.max(jnp.abs(state2.mu - state.mu))) > 0  # it moved
    # fitness = minus the inner learner's own loss on the same params and tasks
    params = learner.meta_params(state)
    f = learner._fitness(state.mu, tasks, jax.random.key(0))
    np.testing.assert_allclose(float(f), -float(learner._meta_loss(params, tasks, jax.random.key(0))), rtol=1e-6)
    curve = learner.eval_curve(state2, jax.tree.map(lambda x: x[0], tasks), jax.random.key(3))
    assert curve.ndim == 1 and bool(jnp.all((curve >= 0) & (curve <= 1)))
    cfg = learner.config_dict()
    assert cfg["population_total"] == 4 and cfg["num_params"] == state.mu.shape[0]


def test_fd_protonet_population_defaults_to_params_plus_one(image_env) -> None:
    learner = make_learner("fd-protonet", image_env, channels=2, depth=2)
    assert learner.population == learner.dim + 1
    with pytest.raises(ConfigError, match="number of parameters"):
        make_learner("fd-protonet", image_env, channels=2, depth=2, population=8)


def test_es_maml_on_sinusoid(env, batch) -> None:
    """ES-MAML: fitness is minus MAML's post-adaptation query loss; the inner loop still adapts."""
    learner = make_learner("es-maml", env, hidden=(8,), population=8, sigma=0.05, alpha=0.5, meta_batch=4,
                           inner_steps=2, eval_steps=2)
    tasks = jax.tree.map(lambda x: x[:4], batch)
    state = learner.init(jax.random.key(0))
    f = learner._fitness(state.mu, tasks, jax.random.key(0))
    np.testing.assert_allclose(float(f), -float(learner.inner.meta_loss(learner.meta_params(state), tasks)[0]),
                               rtol=1e-6)
    state2, metrics = learner.meta_train_step(state, tasks, jax.random.key(1))
    assert float(metrics["collapsed"]) == 0.0 and float(jnp.max(jnp.abs(state2.mu - state.mu))) > 0
    curve = learner.eval_curve(state2, jax.tree.map(lambda x: x[0], tasks), jax.random.key(2))
    assert curve.shape == (3,) and bool(jnp.isfinite(curve).all())


def test_evaluation_mode_follows_the_inner_learner(image_env) -> None:
    """ES-MAML evaluates like MAML (one task per call on images); ES-ProtoNet like ProtoNet."""
    es_maml = make_learner("es-maml", image_env, channels=4, depth=2, population=4)
    assert es_maml.eval_per_task == es_maml.inner.eval_per_task == True  # noqa: E712
    es_proto = make_learner("es-protonet", image_env, channels=4, depth=2, population=4)
    assert es_proto.eval_per_task == es_proto.inner.eval_per_task == False  # noqa: E712
