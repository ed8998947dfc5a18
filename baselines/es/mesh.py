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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from metabench.baselines.es.estimators import Estimator, FitnessFn, ShardResult, shard_estimate
from metabench.errors import ConfigError

POP = "pop"


def pop_mesh(mesh: Mesh | None = None) -> Mesh:
    """``mesh`` itself (it must have a ``pop`` axis), or a 1-D ``pop`` mesh over all devices.

    ``jax.devices()`` lists every device of every process, so after
    ``jax.distributed.initialize`` the default mesh is global.
    """
    if mesh is None:
        return Mesh(np.array(jax.devices()), (POP,))
    if POP not in mesh.axis_names:
        raise ConfigError(
            f"the ES learners shard the population over a mesh axis named {POP!r}; got axes "
            f"{tuple(mesh.axis_names)}. Build one with jax.sharding.Mesh(devices, ('pop',))"
        )
    return mesh


def pop_size(mesh: Mesh) -> int:
    """Number of shards along ``pop``."""
    return int(mesh.shape[POP])


def check_population(population: int, mesh: Mesh) -> int:
    """Candidates per shard; ConfigError if ``population`` does not split evenly."""
    shards = pop_size(mesh)
    if population % shards:
        lo, hi = (population // shards) * shards, (population // shards + 1) * shards
        raise ConfigError(
            f"population={population} is not divisible by the {shards} devices of the mesh's {POP!r} "
            f"axis; use a multiple of {shards} (e.g. {lo or hi} or {hi}), or set population_per_device"
        )
    return population // shards


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def population_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (candidates) split over ``pop``: for ``[population, ...]`` arrays."""
    return NamedSharding(mesh, PartitionSpec(POP))


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
