"""One process of a multi-process ES run on CPU (gloo collectives); writes its final mu as JSON.

Usage: python _es_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_JSON
With NUM_PROCESSES == 0 it runs single-process (the reference).
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "baselines", "es"))


def run_steps(steps: int = 3, population: int = 16) -> tuple[list[float], dict]:
    import jax

    import metabench
    from toy import ESToy

    env = metabench.make("sinusoid-5s")
    learner = ESToy(env, ESToy.Config(population=population, sigma=0.1, alpha=0.5, standardise="global"))
    state = learner.init(jax.random.key(0))
    losses = []
    for i in range(steps):
        tasks = env.sample_tasks(jax.random.key(100 + i), 4)
        state, metrics = learner.meta_train_step(state, tasks, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    mu = [float(v) for v in jax.device_get(state.mu)]  # replicated: every process holds a full copy
    info = {
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "mesh_devices": int(learner.pop_mesh.devices.size),
        "losses": losses,
    }
    return mu, info


def main() -> None:
    pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    if nproc > 0:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid,
            initialization_timeout=60,
        )
    mu, info = run_steps()
    tmp = f"{out}.tmp"
    with open(tmp, "w") as f:
        json.dump({"mu": mu, **info}, f)
    os.replace(tmp, out)
    if nproc > 0:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
