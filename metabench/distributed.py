"""Device meshes and the multi-process launcher, shared by every sharded learner.

Two kinds of learners split work over a 1-D named mesh axis: the ES learners shard their
population over ``pop`` (seed 000, ``metabench.baselines.es``) and DMAML runs its MAML
workers over ``workers`` (seed 002, Algorithm 4, ``metabench.baselines.dmaml``). Both
build the mesh, check that the work divides over it and place their replicated state
with the helpers here; both run across processes through the launcher below.

Launcher: ``jax.distributed.initialize`` from environment variables, then the metabench CLI::

    JAX_COORDINATOR_ADDRESS=host0:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \\
        python -m metabench.distributed run --env sinusoid-10s --learner dmaml-fo ...

``JAX_COORDINATOR_ADDRESS`` is read by JAX itself; ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` are read here (JAX only auto-detects them under SLURM, Open MPI, TPU
pods ...); ``METABENCH_DIST_TIMEOUT`` (seconds, default 300) bounds the wait for the other
processes, so a process count that does not match the coordinator's ends the process
with a stated cause instead of a hang. On CPU the cross-process collectives need gloo
(``jax_cpu_collectives_implementation="gloo"``), set here unless ``JAX_PLATFORMS`` names
another platform. After initialisation ``jax.devices()`` lists every process's devices, so
a learner built with ``mesh=None`` spans all of them. ``python -m
metabench.baselines.es.launch`` is the same launcher under its old name. See
``docs/distributed.md``.

Nothing here runs at import time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from metabench.errors import ConfigError

#: seconds ``initialize_from_env`` waits for every process to join (``METABENCH_DIST_TIMEOUT``)
DEFAULT_INIT_TIMEOUT_S = 300


# -- meshes -------------------------------------------------------------------------------


def axis_mesh(axis: str, mesh: Mesh | None = None, *, devices: int = 0, who: str = "this learner") -> Mesh:
    """``mesh`` itself (it must have an axis named ``axis``), or a 1-D ``axis`` mesh.

    With ``mesh=None`` the mesh spans ``jax.devices()`` -- every device of every process
    after ``jax.distributed.initialize`` -- or its first ``devices`` when ``devices > 0``.
    """
    if mesh is None:
        devs = jax.devices()
        if devices < 0 or devices > len(devs):
            raise ConfigError(f"{who}: devices={devices} but {len(devs)} devices are visible; use 0 (all) or 1..{len(devs)}")
        return Mesh(np.array(devs[:devices] if devices else devs), (axis,))
    if axis not in mesh.axis_names:
        raise ConfigError(
            f"{who} shards over a mesh axis named {axis!r}; got axes {tuple(mesh.axis_names)}. "
            f"Build one with jax.sharding.Mesh(devices, ({axis!r},))"
        )
    return mesh


def axis_size(mesh: Mesh, axis: str) -> int:
    """Number of shards along ``axis``."""
    return int(mesh.shape[axis])


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n`` in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]


def per_shard(n: int, mesh: Mesh, axis: str, what: str, hint: str = "") -> int:
    """``n / shards``; a ``ConfigError`` naming the valid counts when ``n`` does not divide."""
    shards = axis_size(mesh, axis)
    if n % shards:
        lo, hi = (n // shards) * shards, (n // shards + 1) * shards
        raise ConfigError(
            f"{what}={n} is not divisible by the {shards} devices of the mesh's {axis!r} axis; use a multiple of "
            f"{shards} (e.g. {lo or hi} or {hi}), or a mesh of {', '.join(map(str, divisors(n)))} devices{hint}"
        )
    return n // shards


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def row_sharding(mesh: Mesh, axis: str) -> NamedSharding:
    """Leading axis split over ``axis``: for ``[n, ...]`` arrays."""
    return NamedSharding(mesh, PartitionSpec(axis))


def place_replicated(tree: Any, mesh: Mesh) -> Any:
    """Put every leaf of ``tree`` on every device of ``mesh`` (also across processes).

    Leaves already laid out that way are returned unchanged. In a multi-process run every
    process must pass the same values (they are the same by construction: same keys).
    """
    sharding = replicated(mesh)

    def put(x: Any) -> Any:
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = np.asarray(jax.device_get(x)) if isinstance(x, jax.Array) and x.is_fully_addressable else x
        if isinstance(host, jax.Array):  # already global with another layout
            return jax.device_put(host, sharding)
        host = np.asarray(host)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)


def is_traced(tree: Any) -> bool:
    """True if any leaf is a tracer (the caller is inside ``jit``: placement is jit's job)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def check_process_count(expected: int, who: str = "this run") -> None:
    """``ConfigError`` unless ``expected`` is 0 (any) or ``jax.process_count()``."""
    if expected and expected != jax.process_count():
        raise ConfigError(
            f"{who} expects {expected} processes but jax.process_count() is {jax.process_count()}; start it with "
            f"JAX_NUM_PROCESSES={expected} on every process (python -m metabench.distributed ...) or set processes=0"
        )


# -- the launcher --------------------------------------------------------------------------


def initialize_from_env(environ: dict[str, str] | None = None) -> bool:
    """Initialise ``jax.distributed`` if ``JAX_NUM_PROCESSES`` > 1; returns whether it did.

    Checks the variables first (missing ones, a rank outside ``0..N-1``) and bounds the
    wait for the other processes by ``METABENCH_DIST_TIMEOUT`` seconds: a process count
    that does not match the coordinator's then ends the process instead of hanging it (jax
    aborts it with ``DEADLINE_EXCEEDED``; a line on stderr written before the wait names the
    likely cause; errors jax raises instead become ``ConfigError``).
    """
    env = dict(os.environ if environ is None else environ)
    try:
        nproc = int(env.get("JAX_NUM_PROCESSES", "1") or 1)
    except ValueError as e:
        raise ConfigError(f"JAX_NUM_PROCESSES must be an integer, got {env['JAX_NUM_PROCESSES']!r}") from e
    if nproc <= 1:
        return False
    missing = [k for k in ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_ID") if not env.get(k)]
    if missing:
        raise ConfigError(
            f"JAX_NUM_PROCESSES={nproc} but {', '.join(missing)} is not set; set JAX_COORDINATOR_ADDRESS=host:port "
            "(process 0's address) and JAX_PROCESS_ID=0..N-1 on every process"
        )
    try:
        pid = int(env["JAX_PROCESS_ID"])
        timeout = int(float(env.get("METABENCH_DIST_TIMEOUT", DEFAULT_INIT_TIMEOUT_S)))
    except ValueError as e:
        raise ConfigError(f"JAX_PROCESS_ID and METABENCH_DIST_TIMEOUT must be numbers: {e}") from e
    if not 0 <= pid < nproc:
        raise ConfigError(
            f"JAX_PROCESS_ID={pid} is outside 0..{nproc - 1} for JAX_NUM_PROCESSES={nproc}: every process must get "
            "the same JAX_NUM_PROCESSES and its own rank"
        )
    if env.get("JAX_PLATFORMS", "cpu").split(",")[0] == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # jax's coordination client aborts the process (a C++ fatal error, not an exception) when the
    # other processes do not join in time; this line makes the cause readable above its log
    print(f"metabench.distributed: process {pid} of {nproc} waits up to {timeout}s for every process at "
          f"{env['JAX_COORDINATOR_ADDRESS']}; a 'DEADLINE_EXCEEDED' abort means not every process joined "
          "or they disagree on JAX_NUM_PROCESSES / the coordinator address", file=sys.stderr, flush=True)
    try:
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"], num_processes=nproc, process_id=pid,
            initialization_timeout=timeout,
        )
    except Exception as e:  # jax raises a bare RuntimeError/XlaRuntimeError on a timeout
        raise ConfigError(
            f"jax.distributed.initialize did not complete within {timeout}s (process {pid} of {nproc}, coordinator "
            f"{env['JAX_COORDINATOR_ADDRESS']}): not every process joined, or the processes disagree on "
            f"JAX_NUM_PROCESSES / the coordinator address. {type(e).__name__}: {str(e)[:300]}"
        ) from e
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``initialize_from_env()``, then ``metabench.cli.main(argv)``."""
    initialize_from_env()
    from metabench.cli import main as cli_main

    return cli_main(list(sys.argv[1:] if argv is None else argv))


__all__ = [
    "DEFAULT_INIT_TIMEOUT_S",
    "axis_mesh",
    "axis_size",
    "check_process_count",
    "divisors",
    "initialize_from_env",
    "is_traced",
    "main",
    "per_shard",
    "place_replicated",
    "replicated",
    "row_sharding",
]

if __name__ == "__main__":
    sys.exit(main())
