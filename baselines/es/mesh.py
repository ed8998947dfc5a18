"""Population sharding over a ``pop`` mesh axis (seed 000, section II-F).

Each device evaluates ``population / pop_size`` candidates whose noise it regenerates
from the step key (never sent), forms its own gradient estimate, and the estimates are
combined by an all-reduce (``lax.pmean`` / ``lax.psum``) inside ``jax.shard_map``. The
meta-parameters, tasks and keys are replicated (``PartitionSpec()``); the only
population-sized array per device is its ``[population / pop_size, D]`` slice of the
population matrix (the dominant ES memory term, section II-E).

Works the same on one device, on several local devices (e.g. CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``) and on a global mesh spanning
several processes after ``jax.distributed.initialize`` (see ``docs/distributed.md``).
Mesh construction and placement live in ``metabench.distributed`` (shared with DMAML);
this module keeps the ``pop``-axis names and the sharded estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from metabench.baselines.es.estimators import Estimator, FitnessFn, ShardResult, shard_estimate
from metabench.distributed import axis_mesh, axis_size, per_shard, place_replicated, replicated, row_sharding
from metabench.errors import ConfigError

__all__ = ["POP", "check_population", "place_replicated", "pop_mesh", "pop_size", "population_sharding",
           "replicated", "sharded_estimator"]

POP = "pop"


def pop_mesh(mesh: Mesh | None = None) -> Mesh:
    """``mesh`` itself (it must have a ``pop`` axis), or a 1-D ``pop`` mesh over all devices.

    ``jax.devices()`` lists every device of every process, so after
    ``jax.distributed.initialize`` the default mesh is global.
    """
    return axis_mesh(POP, mesh, who="the ES learners")


def pop_size(mesh: Mesh) -> int:
    """Number of shards along ``pop``."""
    return axis_size(mesh, POP)


def check_population(population: int, mesh: Mesh) -> int:
    """Candidates per shard; ConfigError if ``population`` does not split evenly."""
    return per_shard(population, mesh, POP, "population", hint=", or set population_per_device")


def population_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (candidates) split over ``pop``: for ``[population, ...]`` arrays."""
    return row_sharding(mesh, POP)


def sharded_estimator(
    est: Estimator, fitness_fn: FitnessFn, mesh: Mesh
) -> Callable[[jax.Array, Any, jax.Array], ShardResult]:
    """``(mu: float32[D], tasks, key) -> ShardResult`` evaluated over the ``pop`` axis.

    Not jitted: call it inside ``jax.jit``. With a 1-device mesh it still runs under
    ``shard_map`` (the collectives are then no-ops).
    """
    per_shard = check_population(est.population, mesh)
    if est.antithetic and per_shard % 2:
        raise ConfigError(
            f"antithetic sampling keeps each +eps/-eps pair on one device, so the population per device "
            f"must be even; got {per_shard} ({est.population} over {pop_size(mesh)} devices)"
        )

    def body(mu: jax.Array, tasks: Any, key: jax.Array) -> ShardResult:
        first = jax.lax.axis_index(POP) * per_shard
        indices = first + jnp.arange(per_shard, dtype=jnp.int32)
        return shard_estimate(est, fitness_fn, mu, tasks, key, indices, axis=POP)

    def run(mu: jax.Array, tasks: Any, key: jax.Array) -> ShardResult:
        est.check_dim(mu.shape[0])
        return jax.shard_map(
            body,
            mesh=mesh,
            in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec()),
            out_specs=PartitionSpec(),
            # all_gather results are replicated but not statically inferred as such; every
            # output is a psum/pmean/all_gather result, identical on all shards by construction.
            check_vma=False,
        )(mu, tasks, key)

    return run
