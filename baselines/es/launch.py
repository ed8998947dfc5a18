"""The multi-process launcher under its first name; it lives in ``metabench.distributed``.

    JAX_COORDINATOR_ADDRESS=host0:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \\
        python -m metabench.baselines.es.launch run --env omniglot-5w5s --learner es-protonet ...

is ``python -m metabench.distributed run ...`` (kept so existing commands keep working).
See ``metabench.distributed`` and ``docs/distributed.md``.
"""

from __future__ import annotations

import sys

from metabench.distributed import initialize_from_env, main

__all__ = ["initialize_from_env", "main"]

if __name__ == "__main__":
    sys.exit(main())
