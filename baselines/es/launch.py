"""Multi-process launcher: ``jax.distributed.initialize`` from env vars, then the metabench CLI.

    JAX_COORDINATOR_ADDRESS=host0:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \\
        python -m metabench.baselines.es.launch run --env omniglot-5w5s --learner es-protonet ...

``JAX_COORDINATOR_ADDRESS`` is read by JAX itself; ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` are read here (JAX only auto-detects them under SLURM, Open MPI, TPU
pods ...). On CPU the cross-process collectives need gloo
(``jax_cpu_collectives_implementation="gloo"``), set here unless ``JAX_PLATFORMS`` names
another platform. After initialisation ``jax.devices()`` lists every process's devices, so
an ES learner built with ``mesh=None`` shards its population over all of them.
See ``docs/distributed.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from metabench.errors import ConfigError


def initialize_from_env(environ: dict[str, str] | None = None) -> bool:
    """Initialise ``jax.distributed`` if ``JAX_NUM_PROCESSES`` > 1; returns whether it did."""
    env = dict(os.environ if environ is None else environ)
    nproc = int(env.get("JAX_NUM_PROCESSES", "1") or 1)
    if nproc <= 1:
        return False
    missing = [k for k in ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_ID") if not env.get(k)]
    if missing:
        raise ConfigError(
            f"JAX_NUM_PROCESSES={nproc} but {', '.join(missing)} is not set; set JAX_COORDINATOR_ADDRESS=host:port "
            "(process 0's address) and JAX_PROCESS_ID=0..N-1 on every process"
        )
    import jax

    if env.get("JAX_PLATFORMS", "cpu").split(",")[0] == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=env["JAX_COORDINATOR_ADDRESS"], num_processes=nproc, process_id=int(env["JAX_PROCESS_ID"])
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    initialize_from_env()
    from metabench.cli import main as cli_main

    return cli_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
