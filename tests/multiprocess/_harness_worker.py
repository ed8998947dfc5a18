"""One process of a multi-process ES-ProtoNet harness run (synthetic Omniglot-shaped env).

Usage: python _harness_worker.py OUT_DIR. Multi-process when JAX_NUM_PROCESSES > 1 (the
launcher's environment variables); writes the result file only on process 0, like
``metabench run``.
"""

from __future__ import annotations

import sys


def main() -> None:
    from metabench.baselines.es.launch import initialize_from_env

    initialize_from_env()
    from metabench.baselines._synthetic import synthetic_env
    from metabench.harness.train import run

    env = synthetic_env(ways=3, shots=1, queries=2, classes=15, per_class=6)
    run(env, "es-protonet", steps=3, out_dir=sys.argv[1], val_every=2, val_tasks=20, progress=False,
        overrides={"channels": 4, "population": 8, "meta_batch": 2, "standardise": "global", "sigma": 0.05})


if __name__ == "__main__":
    main()
