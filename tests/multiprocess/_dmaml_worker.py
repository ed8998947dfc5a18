"""One DMAML harness run (sinusoid-5s), single- or multi-process; writes what the test compares as JSON.

Usage: python _dmaml_worker.py OUT_DIR. Multi-process when JAX_NUM_PROCESSES > 1 (through
``metabench.distributed.initialize_from_env``, the launcher's code); with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` it runs on 8 simulated devices.
Every process writes ``OUT_DIR/proc<i>.json`` (only process 0 writes the result file).
"""

from __future__ import annotations

import json
import os
import sys

#: the configuration the three layouts must agree on: 8 workers, 2 epochs of 2 tasks, loss-median
OVERRIDES = {"workers": 8, "epochs": 2, "tasks": 2, "generator": "loss-median", "history": 3, "meta_lr": 0.01}


def errors(env: object) -> dict[str, str | None]:
    """The messages of configurations the mesh must refuse (workers that do not divide the devices)."""
    import jax

    from metabench.errors import ConfigError
    from metabench.learner import make_learner

    out: dict[str, str | None] = {}
    for workers in (3, 12):
        try:
            make_learner("dmaml-fo", env, workers=workers, tasks=1)
            out[str(workers)] = None
        except ConfigError as e:
            out[str(workers)] = str(e)
    try:
        make_learner("dmaml-fo", env, workers=8, tasks=1, processes=jax.process_count() + 1)
        out["processes"] = None
    except ConfigError as e:
        out["processes"] = str(e)
    return out


def main() -> None:
    from metabench.distributed import initialize_from_env

    initialize_from_env()
    import jax
    import numpy as np

    import metabench
    from metabench.harness.train import run

    out_dir = sys.argv[1]
    env = metabench.make("sinusoid-5s")
    res = run(env, "dmaml-fo", steps=3, out_dir=out_dir, val_every=2, val_tasks=20, progress=False,
              checkpoint_every=2, overrides=OVERRIDES)
    st = res.final_state
    flat = np.concatenate([np.asarray(jax.device_get(x)).ravel() for x in jax.tree.leaves(st.params)])
    info = {
        "process_count": jax.process_count(), "device_count": jax.device_count(),
        "mesh": res.record["device"]["mesh"], "params": flat.tolist(),
        "history": np.asarray(jax.device_get(st.history)).tolist(),
        "worker_step": np.asarray(jax.device_get(st.worker_step)).tolist(),
        "test_mse": res.metric["mean"], "final_loss": res.record["train"]["final_loss"],
        "val": [h["value"] for h in res.record["validation"]["history"]],
        "kept": res.record["train"]["final_metrics"].get("kept_workers"),
        "wrote_result": res.path is not None, "errors": errors(env),
    }
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"proc{jax.process_index()}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(path + ".tmp", path)
    if jax.process_count() > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
