"""The evosax 0.3 adapter: one ask/tell interface over distribution strategies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabench.baselines.es.evosax_adapter import EvosaxAdapter, distribution_strategies
from metabench.errors import ConfigError

C = jnp.linspace(-0.5, 0.5, 5)


def loss(pop: jax.Array) -> jax.Array:
    return jnp.sum((pop - C) ** 2, axis=-1)


@pytest.mark.parametrize(
    "strategy, lr",
    [
        ("Open_ES", 0.05),
        ("SNES", 0.05),
        pytest.param("PGPE", 0.2, marks=pytest.mark.slow),
        pytest.param("xNES", 0.05, marks=pytest.mark.slow),
    ],
)
def test_strategies_minimise_a_quadratic(strategy: str, lr: float) -> None:
    es = EvosaxAdapter(strategy, 32, 5, sigma=0.1, learning_rate=lr)
    state = es.init(jax.random.key(0), jnp.zeros(5))

    @jax.jit
    def step(state, key):
        k1, k2 = jax.random.split(key)
        pop, state = es.ask(k1, state)
        assert pop.shape == (32, 5)
        return es.tell(k2, pop, loss(pop), state)

    before = float(loss(es.mean(state)))
    for i in range(150):
        state = step(state, jax.random.key(i))
    assert float(loss(es.mean(state))) < 0.3 * before


def test_sigma_reaches_the_strategy() -> None:
    es = EvosaxAdapter("SNES", 16, 5, sigma=0.37, learning_rate=0.1)
    np.testing.assert_allclose(es.init(jax.random.key(0), jnp.zeros(5)).std, 0.37, rtol=1e-6)
    oes = EvosaxAdapter("Open_ES", 16, 5, sigma=0.37, learning_rate=0.1)
    pop, _ = oes.ask(jax.random.key(1), oes.init(jax.random.key(0), jnp.zeros(5)))
    assert 0.2 < float(jnp.std(pop)) < 0.55


def test_errors() -> None:
    with pytest.raises(ConfigError, match="Open_ES"):
        EvosaxAdapter("OpenES", 16, 5, sigma=0.1, learning_rate=0.1)
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        EvosaxAdapter("Open_ES", 16, 5, sigma=0.0, learning_rate=0.1)
    with pytest.raises(ConfigError, match="even"):
        EvosaxAdapter("Open_ES", 15, 5, sigma=0.1, learning_rate=0.1)
    with pytest.raises(ConfigError, match="does not take"):
        EvosaxAdapter("Open_ES", 16, 5, sigma=0.1, learning_rate=0.1, bogus=1)
    assert {"Open_ES", "SNES", "PGPE"} <= set(distribution_strategies())
