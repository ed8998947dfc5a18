"""Run with 8 forced CPU devices (XLA_FLAGS set by the caller before jax starts); prints JSON.

Compares the sharded ES estimate/update on an 8-device ``pop`` mesh with the same
computation on a 1-device mesh (same key, same total population).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

import metabench  # noqa: E402
from metabench.baselines.es.estimators import Estimator, estimate  # noqa: E402
from metabench.baselines.es.mesh import sharded_estimator  # noqa: E402
from metabench.errors import ConfigError  # noqa: E402

DIM = 6
A = jnp.diag(jnp.linspace(0.5, 3.0, DIM))
C = jnp.linspace(-1.0, 1.0, DIM)


def fitness(p, tasks, key):
    d = p - C
    return -0.5 * d @ A @ d


def main() -> None:
    from toy import ESToy

    out: dict = {"devices": jax.device_count()}
    devs = jax.devices()
    mesh8 = Mesh(np.array(devs), ("pop",))
    mesh1 = Mesh(np.array(devs[:1]), ("pop",))
    mu = jnp.full(DIM, 0.2)
    key = jax.random.key(11)
    for method, mode in (("wsr", "global"), ("wsr", "local"), ("fd", "global"), ("fd", "local")):
        est = Estimator(method, population=64, sigma=0.1, mode=mode)
        get = lambda r: jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), r)  # noqa: E731
        g8 = get(jax.jit(sharded_estimator(est, fitness, mesh8))(mu, None, key))
        g1 = get(jax.jit(sharded_estimator(est, fitness, mesh1))(mu, None, key))
        ref = get(estimate(est, fitness, mu, None, key))
        out[f"{method}_{mode}"] = {
            "max_abs_diff_8_vs_1": float(jnp.max(jnp.abs(g8.grad - g1.grad))),
            "max_abs_diff_1_vs_ref": float(jnp.max(jnp.abs(g1.grad - ref.grad))),
            "grad_norm": float(jnp.linalg.norm(g1.grad)),
            "mean_diff": float(jnp.abs(g8.fitness_mean - g1.fitness_mean)),
        }
    try:
        sharded_estimator(Estimator("wsr", population=60, sigma=0.1), fitness, mesh8)
        out["indivisible_error"] = None
    except ConfigError as e:
        out["indivisible_error"] = str(e)

    # the learner: a few steps on an 8-device mesh vs a 1-device mesh, global mode
    env = metabench.make("sinusoid-5s")
    finals = {}
    for name, mesh in (("8", mesh8), ("1", mesh1)):
        learner = ESToy(env, ESToy.Config(population=32, sigma=0.1, alpha=0.2, standardise="global"), mesh=mesh)
        state = learner.init(jax.random.key(0))
        out[f"state_sharding_{name}"] = str(state.mu.sharding.spec)
        out[f"state_devices_{name}"] = len(state.mu.sharding.device_set)
        for i in range(3):
            tasks = env.sample_tasks(jax.random.key(100 + i), 4)
            state, metrics = learner.meta_train_step(state, tasks, jax.random.key(i))
        finals[name] = np.asarray(jax.device_get(state.mu))
    out["learner_max_abs_diff"] = float(np.max(np.abs(finals["8"] - finals["1"])))
    out["learner_moved"] = float(np.max(np.abs(finals["1"])))
    try:
        ESToy(env, ESToy.Config(population=12, sigma=0.1), mesh=mesh8)
        out["learner_indivisible_error"] = None
    except ConfigError as e:
        out["learner_indivisible_error"] = str(e)
    per_dev = ESToy(env, ESToy.Config(population_per_device=4, sigma=0.1), mesh=mesh8)
    out["population_per_device_total"] = per_dev.population
    out["harness"] = harness_runs(mesh8, mesh1)
    print(json.dumps(out))


def harness_runs(mesh8: Mesh, mesh1: Mesh) -> dict:
    """ES-ProtoNet through the harness (train, validate, test) on both meshes, global mode."""
    import tempfile

    from metabench.baselines._synthetic import synthetic_env
    from metabench.harness.train import run

    env = synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6)
    cfg = {"channels": 4, "population": 16, "meta_batch": 2, "standardise": "global", "sigma": 0.05}
    res = {}
    for name, mesh in (("8", mesh8), ("1", mesh1)):
        with tempfile.TemporaryDirectory() as tmp:
            r = run(env, "es-protonet", steps=3, out_dir=tmp, val_every=2, val_tasks=20, progress=False,
                    write_result=False, overrides=cfg, mesh=mesh)
        res[name] = {"mean": float(r.metric["mean"]), "n_tasks": int(r.metric["n_tasks"]),
                     "mesh": r.record["device"]["mesh"],
                     "val": [float(v["value"]) for v in r.record["validation"]["history"]]}
    return res


if __name__ == "__main__":
    main()
