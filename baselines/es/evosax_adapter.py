"""Any evosax 0.3 distribution-based strategy (Open_ES, SNES, PGPE, ...) over a flat vector.

evosax 0.3 API (checked against the installed package): ``Strategy(population_size,
solution, ...)`` with optional ``optimizer`` (optax) and ``std_schedule`` constructor
arguments depending on the algorithm; ``state = es.init(key, mean, params)``;
``population, state = es.ask(key, state, params)``; ``state, metrics = es.tell(key,
population, fitness, state, params)``. evosax *minimises* fitness and applies its own
fitness shaping inside ``tell`` (centered ranks for Open_ES/PGPE, rank weights for SNES,
...), so this adapter hands it the loss (``-F``) untouched.

The initial search standard deviation ``sigma`` is set through whichever knob the
strategy has: ``std_schedule=optax.constant_schedule(sigma)`` or ``params.std_init``.
The mean update uses ``optax.sgd(learning_rate)`` (``optax.adam`` with ``adam=True``) where
the strategy takes an optimiser.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import optax

from metabench.errors import ConfigError
from metabench.registry import did_you_mean


def distribution_strategies() -> dict[str, type]:
    """evosax's table of distribution-based algorithms, name -> class (imports evosax)."""
    try:
        from evosax.algorithms import distribution_based_algorithms
    except ImportError as e:  # pragma: no cover - evosax is in the `es` extra
        raise ConfigError("the evosax adapter needs evosax>=0.3: pip install 'metabench[es]'") from e
    return dict(distribution_based_algorithms)


class EvosaxAdapter:
    """``ask``/``tell`` of one evosax strategy on a flat ``float32[D]`` parameter vector.

    strategy: a key of ``evosax.algorithms.distribution_based_algorithms`` ("Open_ES", "SNES", ...).
    population: total population size.
    dim: number of parameters ``D``.
    sigma: initial (or fixed, for Open_ES) search standard deviation; must be > 0.
    learning_rate: step size on the mean, for strategies that take an optax optimiser.
    adam: use ``optax.adam(learning_rate)`` instead of ``optax.sgd`` for that step.
    options: extra keyword arguments for the strategy constructor (e.g. ``use_antithetic_sampling``).
    """

    def __init__(
        self,
        strategy: str,
        population: int,
        dim: int,
        *,
        sigma: float,
        learning_rate: float,
        adam: bool = False,
        **options: Any,
    ):
        table = distribution_strategies()
        if strategy not in table:
            raise ConfigError(
                f"unknown evosax strategy {strategy!r}.{did_you_mean(strategy, list(table))} "
                f"Distribution-based strategies: {', '.join(sorted(table))}."
            )
        if not sigma > 0:
            raise ConfigError(f"sigma must be > 0 (the initial search standard deviation), got {sigma}")
        cls = table[strategy]
        accepted = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any] = dict(options)
        if "optimizer" in accepted and "optimizer" not in kwargs:
            kwargs["optimizer"] = (optax.adam if adam else optax.sgd)(learning_rate)
        if "std_schedule" in accepted and "std_schedule" not in kwargs:
            kwargs["std_schedule"] = optax.constant_schedule(sigma)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(f"evosax {strategy} does not take {unknown}; it takes {sorted(set(accepted) - {'self'})}")
        try:
            self.es = cls(population_size=population, solution=jnp.zeros(dim, jnp.float32), **kwargs)
        except AssertionError as e:  # evosax checks e.g. "Population size must be even."
            raise ConfigError(f"evosax {strategy} with population={population}: {e}") from e
        params = self.es.default_params
        if hasattr(params, "std_init"):
            params = params.replace(std_init=sigma)
        self.params = params
        self.strategy = strategy
        self.population = population
        self.dim = dim

    def init(self, key: jax.Array, mean: jax.Array) -> Any:
        """Strategy state centred on ``mean: float32[D]``."""
        return self.es.init(key, mean, self.params)

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """``(population: float32[P, D], state)``."""
        return self.es.ask(key, state, self.params)

    def tell(self, key: jax.Array, population: jax.Array, loss: jax.Array, state: Any) -> Any:
        """Update from ``loss: float32[P]`` (lower is better; evosax shapes it itself)."""
        state, _ = self.es.tell(key, population, loss, state, self.params)
        return state

    def mean(self, state: Any) -> jax.Array:
        """Current search mean ``float32[D]``."""
        return state.mean
