"""DMAML (seed 002 Algorithms 4-5) and its weight generators (section 4.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.baselines import weight_generators as wg
from metabench.baselines._synthetic import synthetic_env
from metabench.baselines.maml import MamlState
from metabench.errors import ConfigError, RegistrationError
from metabench.harness import RunInterrupted, run

SINE = dict(hidden=(16,), meta_lr=0.01)


@pytest.fixture(scope="module")
def sine() -> Any:
    return metabench.make("sinusoid-5s")


@pytest.fixture(scope="module")
def images() -> Any:
    return synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6)


def leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_trees_close(a: Any, b: Any, atol: float = 1e-6) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


def one_run(learner: Any, env: Any, state: Any = None, seed: int = 1) -> tuple[Any, Any, Any, Any]:
    """``(state before, state after, metrics, tasks)`` of one jitted DMAML run."""
    state = learner.init(jax.random.key(0)) if state is None else state
    tasks = env.sample_tasks(jax.random.key(seed), learner.config.meta_batch)
    new, metrics = jax.jit(learner.meta_train_step)(state, tasks, jax.random.key(seed + 100))
    return state, new, metrics, tasks


# -- weight generators (section 4.3) ------------------------------------------------------------


HIST = jnp.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [10.0, 0.5, 0.5]])  # sums 3, 6, 9, 11


def test_table_holds_the_four_generators_of_section_4_3() -> None:
    assert {"plain", "loss-median", "weighted", "loss-moving-average"} <= set(wg.weight_generators())


def test_plain_is_the_arithmetic_mean() -> None:
    m = wg.weight_generator("plain").fn(HIST, jnp.int32(3), 1.0)
    np.testing.assert_allclose(m.weights, [0.25] * 4)
    assert float(m.g) == 1.0


def test_loss_median_drops_the_workers_worse_than_the_median() -> None:
    m = wg.loss_median(HIST, jnp.int32(3))  # sums 3, 6, 9, 11: median 7.5
    np.testing.assert_allclose(m.weights, [0.5, 0.5, 0.0, 0.0])
    # only the newest column valid: losses 1, 2, 3, 0.5 -> median 1.5 keeps workers 0 and 3
    np.testing.assert_allclose(wg.loss_median(HIST, jnp.int32(1)).weights, [0.5, 0.0, 0.0, 0.5])
    # odd count: the median worker itself is kept
    np.testing.assert_allclose(wg.loss_median(HIST[:3], jnp.int32(3)).weights, [0.5, 0.5, 0.0])


def test_non_finite_losses_are_dropped_and_an_all_bad_set_falls_back_to_all() -> None:
    bad = HIST.at[0, 2].set(jnp.nan)
    np.testing.assert_allclose(wg.loss_median(bad, jnp.int32(3)).weights, [0.0, 0.5, 0.5, 0.0])
    allbad = jnp.full((3, 2), jnp.inf)
    for fn in (wg.loss_median, wg.loss_moving_average):
        np.testing.assert_allclose(fn(allbad, jnp.int32(2)).weights, [1 / 3] * 3)


def test_weighted_moves_by_g() -> None:
    m = wg.weighted(HIST, jnp.int32(3), 0.25)
    np.testing.assert_allclose(m.weights, [0.25] * 4)
    assert float(m.g) == pytest.approx(0.25)


def test_loss_moving_average_keeps_workers_below_the_rolling_average() -> None:
    # window mean over all workers and epochs: (3 + 6 + 9 + 11) / 12 = 2.4167; newest: 1, 2, 3, 0.5
    np.testing.assert_allclose(wg.loss_moving_average(HIST, jnp.int32(3)).weights, [1 / 3, 1 / 3, 0, 1 / 3])
    # one worker, or every worker equal: nobody is strictly below, so all are averaged (plain)
    np.testing.assert_allclose(wg.loss_moving_average(jnp.ones((3, 5)), jnp.int32(5)).weights, [1 / 3] * 3)
    np.testing.assert_allclose(wg.loss_moving_average(HIST[:1], jnp.int32(3)).weights, [1.0])


@pytest.mark.parametrize("g", [0.0, -0.1, 1.5, float("nan")])
def test_g_outside_0_1_is_refused(g: float) -> None:
    with pytest.raises(ConfigError, match="0 < g <= 1"):
        wg.check_g(g)


def test_unknown_generator_suggests_the_close_name(sine: Any) -> None:
    with pytest.raises(ConfigError, match="Did you mean: 'loss-median'"):
        wg.weight_generator("loss-medain")
    with pytest.raises(ConfigError, match="unknown weight generator 'mean'"):
        metabench.make_learner("dmaml", sine, generator="mean")


def test_users_can_register_a_generator(sine: Any) -> None:
    def first_only(history: jax.Array, filled: jax.Array, g: float = 1.0) -> wg.Merge:
        return wg.Merge(jnp.zeros(history.shape[0]).at[0].set(1.0), jnp.ones(()))

    wg.register_weight_generator("test-first-only", first_only, "worker 0 only")
    try:
        with pytest.raises(RegistrationError, match="already registered"):
            wg.register_weight_generator("test-first-only", first_only)
        learner = metabench.make_learner("dmaml-fo", sine, workers=2, tasks=2, generator="test-first-only", **SINE)
        state, new, metrics, tasks = one_run(learner, sine)
        maml = metabench.make_learner("maml-fo", sine, meta_batch=2, **SINE)
        ref, _ = jax.jit(maml.meta_train_step)(MamlState(state.params, jax.tree.map(lambda x: x[0], state.opt_state),
                                                jnp.int32(0)), jax.tree.map(lambda x: x[:2], tasks), None)
        assert_trees_close(new.params, ref.params)
        assert float(metrics["kept_workers"]) == 1.0
    finally:
        wg._TABLE.pop("test-first-only", None)


# -- the learner ------------------------------------------------------------------------------


def test_dmaml_ids_are_registered() -> None:
    from metabench.learner import learner_spec

    assert learner_spec("dmaml").entry_point == learner_spec("dmaml-fo").entry_point
    assert learner_spec("dmaml-fo").defaults == {"first_order": True}


@pytest.mark.parametrize(("kw", "match"), [
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"history": 0}, "history must be"),
    ({"g": 0.5}, "does not use it"),
    ({"generator": "weighted", "g": 0.0}, "0 < g <= 1"),
    ({"adam_state": "drop"}, "adam_state='drop' is not a choice"),
    ({"worker_map": "pmap"}, "worker_map='pmap' is not a choice"),
    ({"workers": 2, "epochs": 2, "meta_batch": 6}, "multiple of 4"),
    ({"workers": 2, "tasks": 3, "meta_batch": 8}, "set one of meta_batch or tasks"),
    ({"processes": 2}, "expects 2 processes"),
    ({"devices": 5}, "devices=5"),
])
def test_bad_configurations_are_clear_errors(sine: Any, kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        metabench.make_learner("dmaml", sine, **kw)


def test_meta_batch_is_workers_times_epochs_times_tasks(sine: Any) -> None:
    a = metabench.make_learner("dmaml", sine, workers=3, epochs=2, tasks=4)
    b = metabench.make_learner("dmaml", sine, workers=3, epochs=2, meta_batch=24)
    assert a.config.meta_batch == b.config.meta_batch == 24 and a.config.tasks == b.config.tasks == 4
    c = metabench.make_learner("dmaml", sine, workers=2)  # tasks: MAML's default for sinusoid (25)
    assert c.config.tasks == 25 and c.config.meta_batch == 50 and c.inner.config.meta_batch == 25
    with pytest.raises(ConfigError, match="got 5 tasks"):
        a.meta_train_step(a.init(jax.random.key(0)), sine.sample_tasks(jax.random.key(0), 5), jax.random.key(0))


@pytest.mark.parametrize("env_name", ["sine", "images"])
def test_workers_are_maml_steps_merged_by_the_mean(env_name: str, request: pytest.FixtureRequest) -> None:
    """Algorithm 4: run r = the mean of each worker's ``epochs`` MAML steps from the common model on its rows."""
    env = request.getfixturevalue(env_name)
    kw = SINE if env_name == "sine" else {"channels": 2, "depth": 1}
    w = 3 if env_name == "sine" else 2
    learner = metabench.make_learner("dmaml-fo", env, workers=w, epochs=2, tasks=2, **kw)
    maml = metabench.make_learner("maml-fo", env, meta_batch=2, **kw)
    maml_step = jax.jit(maml.meta_train_step)
    state, new, metrics, tasks = one_run(learner, env)
    rows = jax.tree.map(lambda x: x.reshape(w, 2, 2, *x.shape[1:]), tasks)
    finals, losses = [], []
    for j in range(w):
        s = MamlState(state.params, jax.tree.map(lambda x: x[j], state.opt_state), jnp.int32(0))
        for e in range(2):
            s, m = maml_step(s, jax.tree.map(lambda x: x[j, e], rows), None)
            losses.append(float(m["loss"]))
        finals.append(s.params)
    mean = jax.tree.map(lambda *xs: sum(xs) / w, *finals)
    assert_trees_close(new.params, mean, atol=2e-6)
    np.testing.assert_allclose(np.asarray(new.history)[:, -2:].ravel(), losses, rtol=1e-5)
    assert int(new.filled) == 2 and np.all(np.asarray(new.history)[:, :3] == 0)
    assert float(metrics["loss"]) == pytest.approx(np.mean(losses), rel=1e-5)
    assert np.asarray(new.worker_step).tolist() == [2] * w and int(new.step) == 1


def test_one_worker_is_maml_through_the_harness(sine: Any, tmp_path: Path) -> None:
    """Section 6.1's implementation test: DMAML with 1 worker, 1 epoch = MAML (same seed, same tasks)."""
    common = dict(steps=6, val_every=3, val_tasks=10, progress=False, write_result=False, out_dir=tmp_path)
    a = run(sine, "maml-fo", overrides={"meta_batch": 4, **SINE}, **common)
    for gen in ("plain", "loss-median"):  # a generator never changes one worker's model
        b = run(sine, "dmaml-fo", overrides={"tasks": 4, "generator": gen, **SINE}, **common)
        assert_trees_close(a.final_state.params, b.final_state.params, atol=1e-6)
        assert b.metric["mean"] == pytest.approx(a.metric["mean"], rel=1e-5)
        assert [h["value"] for h in b.record["validation"]["history"]] == pytest.approx(
            [h["value"] for h in a.record["validation"]["history"]], rel=1e-5)
    assert b.record["device"]["mesh"] == {"workers": 1}


def test_weighted_generator_is_g_mean_plus_1_minus_g_old(sine: Any) -> None:
    plain = metabench.make_learner("dmaml-fo", sine, workers=2, tasks=2, **SINE)
    half = metabench.make_learner("dmaml-fo", sine, workers=2, tasks=2, generator="weighted", g=0.25, **SINE)
    old, p, _, _ = one_run(plain, sine)
    _, h, _, _ = one_run(half, sine)
    expect = jax.tree.map(lambda m, o: 0.25 * m + 0.75 * o, p.params, old.params)
    assert_trees_close(h.params, expect)


def test_loss_median_merge_uses_the_kept_workers_only(sine: Any) -> None:
    learner = metabench.make_learner("dmaml-fo", sine, workers=4, tasks=2, generator="loss-median", **SINE)
    plain = metabench.make_learner("dmaml-fo", sine, workers=4, tasks=2, **SINE)
    state, new, metrics, tasks = one_run(learner, sine)
    kept = np.asarray(new.history)[:, -1] <= np.median(np.asarray(new.history)[:, -1])
    assert float(metrics["kept_workers"]) == kept.sum() < 4
    _, p, _, _ = one_run(plain, sine)
    assert np.max(np.abs(leaves(new.params)[0] - leaves(p.params)[0])) > 1e-6  # a different merge


@pytest.mark.parametrize("mode", ["map", "unroll"])
def test_worker_maps_agree(sine: Any, mode: str) -> None:
    ref = metabench.make_learner("dmaml-fo", sine, workers=3, epochs=2, tasks=2, worker_map="vmap", **SINE)
    other = metabench.make_learner("dmaml-fo", sine, workers=3, epochs=2, tasks=2, worker_map=mode, **SINE)
    _, a, _, _ = one_run(ref, sine)
    _, b, _, _ = one_run(other, sine)
    assert_trees_close(a, b, atol=1e-6)


def test_adam_state_keep_reset_mean(sine: Any) -> None:
    outs = {}
    for mode in ("keep", "reset", "mean"):
        learner = metabench.make_learner("dmaml-fo", sine, workers=2, tasks=2, adam_state=mode, **SINE)
        outs[mode] = one_run(learner, sine)[1].opt_state
    keep, reset, mean = leaves(outs["keep"]), leaves(outs["reset"]), leaves(outs["mean"])
    floats = [i for i, x in enumerate(keep) if np.issubdtype(x.dtype, np.floating)]
    assert any(np.abs(keep[i][0] - keep[i][1]).max() > 0 for i in floats)  # each worker its own moments
    assert all(np.all(x == 0) for x in reset)  # a new worker every run (Algorithm 4 line 4)
    for i in floats:
        np.testing.assert_allclose(mean[i][0], mean[i][1])
        np.testing.assert_allclose(mean[i][0], keep[i].mean(0), rtol=1e-6, atol=1e-12)


def test_checkpoint_resume_keeps_the_loss_history(sine: Any, tmp_path: Path) -> None:
    kw = dict(steps=6, val_every=3, val_tasks=10, progress=False, out_dir=tmp_path, log_every=2,
              overrides={"workers": 3, "tasks": 2, "generator": "loss-moving-average", "history": 4, **SINE})
    whole = run(sine, "dmaml-fo", write_result=False, **{**kw, "out_dir": tmp_path / "whole"})

    def stop(t: int, state: Any, metrics: Any) -> None:
        if t == 4:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run(sine, "dmaml-fo", callback=stop, **kw)
    resumed = run(sine, "dmaml-fo", resume=True, **kw)
    assert resumed.record["run"]["resumed_from"] == 4
    for x, y in zip(leaves(whole.final_state), leaves(resumed.final_state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert int(resumed.final_state.filled) == 4 and np.all(np.asarray(resumed.final_state.history) != 0)
    assert resumed.metric == whole.metric


def test_rl_workers_run_maml_rl() -> None:
    env = metabench.make("nav2d-easy")
    learner = metabench.make_learner("dmaml-fo", env, workers=2, tasks=2, generator="loss-median", eval_steps=1)
    assert type(learner.inner).__name__ == "MamlRL" and learner.config.judge == "-return_post"
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), learner.config.meta_batch)
    new, metrics = jax.jit(learner.meta_train_step)(state, tasks, jax.random.key(2))
    assert {"loss", "return_pre", "return_post", "kept_workers"} <= set(metrics)
    assert np.all(np.isfinite(np.asarray(new.history)))
    np.testing.assert_allclose(-np.asarray(new.history)[:, -1].mean(), float(metrics["return_post"]), rtol=1e-5)
