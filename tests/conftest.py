"""Suite-wide settings, applied before any test imports JAX's backend.

The suite is dominated by XLA compilation (hundreds of small, distinct programs), not by
running them. ``--xla_backend_optimization_level=0`` skips LLVM's optimisation passes for
the CPU code XLA emits: measured here, compile time of a MAML-RL meta-step 11.0 s -> 6.7 s
(PPO) and 14.9 s -> 8.6 s (TRPO), three smoke-matrix tests 185 s -> 132 s. XLA's own HLO
passes still run; run time grows, which the suite barely has. Results are NOT bit-equal to
an optimised build's (a MAML-RL step's loss here: -0.0289300 vs -0.0289385; instruction
selection and reduction order differ), so the suite never compares against numbers made
outside it: every bit-identity check compares runs under the same flags (the subprocesses
the tests start inherit them) and every other comparison has a tolerance. Set
``METABENCH_TEST_XLA_OPT=1`` to run the suite with XLA's default optimisation.
"""

from __future__ import annotations

import os

_FLAG = "--xla_backend_optimization_level=0"

if os.environ.get("METABENCH_TEST_XLA_OPT") != "1" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()
