"""DMAML's weight generators (seed 002, section 4.3, Algorithm 5 line 7), in an extensible table.

A weight generator ``G`` merges the workers' meta-models ``theta_{i+1, MAML, w_j}`` into the
next common meta-model ``theta_{i+1, DMAML}``, judging each worker by its recent losses.
Every generator here has the form

    theta_{i+1, DMAML} = g * sum_j a_j theta_{i+1, MAML, w_j} + (1 - g) * theta_{i, DMAML}

with worker weights ``a_j >= 0`` summing to 1 and a step factor ``0 < g <= 1``, so one
generator is a small pure function of the loss history only::

    fn(history: float32[W, H], filled: int32[], g: float) -> Merge(weights: float32[W], g: float32[])

``history[j]`` holds worker ``j``'s losses of its last ``H`` epochs (MAML meta-steps), oldest
first, newest last; only the last ``filled`` columns are valid (``filled < H`` during the
first runs). The thesis keeps the loss sums of the last 5 epochs per worker (``H = 5``).
Because the merge needs only ``a`` and ``g``, the sharded learner merges with one weighted
all-reduce of the parameters (``metabench.baselines.dmaml``), whatever the generator.

Choices where section 4.3 leaves a detail open (stated per generator below):

* a worker's *recent loss* is the sum of its valid history entries (the thesis's "loss
  sums of the last 5 epochs"); all workers have the same number of valid entries, so the
  sum ranks them as the mean would;
* a non-finite loss counts as worse than every finite one (that worker is dropped first);
* when a rule would drop every worker, the generator falls back to the plain mean of all
  workers (``plain``), so a run never stalls on an empty set.

Register your own with ``register_weight_generator(name, fn, description)``; unknown names
raise ``ConfigError`` with a did-you-mean (``metabench.registry.did_you_mean``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metabench.errors import ConfigError, RegistrationError
from metabench.registry import did_you_mean


class Merge(NamedTuple):
    """What a generator returns: ``weights`` float32[W] (>= 0, sum 1) and the step factor ``g`` float32[]."""

    weights: jax.Array
    g: jax.Array


GeneratorFn = Callable[[jax.Array, jax.Array, float], Merge]


@dataclasses.dataclass(frozen=True)
class WeightGenerator:
    """A table entry: ``fn`` (see the module docstring), what it implements, and whether it uses ``g``."""

    name: str
    fn: GeneratorFn
    description: str = ""
    uses_g: bool = False


_TABLE: dict[str, WeightGenerator] = {}


def register_weight_generator(
    name: str, fn: GeneratorFn, description: str = "", *, uses_g: bool = False, override: bool = False
) -> WeightGenerator:
    """Add ``fn`` to the table under ``name`` (``override=True`` to replace an entry)."""
    if name in _TABLE and not override:
        raise RegistrationError(f"weight generator {name!r} is already registered; pass override=True to replace it")
    entry = WeightGenerator(name, fn, description, uses_g)
    _TABLE[name] = entry
    return entry


def weight_generator(name: str) -> WeightGenerator:
    """The table entry ``name``; ``ConfigError`` with a did-you-mean for unknown names."""
    if name not in _TABLE:
        raise ConfigError(
            f"unknown weight generator {name!r}.{did_you_mean(name, sorted(_TABLE))} "
            f"Registered: {', '.join(sorted(_TABLE))} (metabench.baselines.weight_generators)."
        )
    return _TABLE[name]


def weight_generators() -> list[str]:
    """Registered generator names, sorted."""
    return sorted(_TABLE)


def check_g(g: float) -> float:
    """``g`` itself if ``0 < g <= 1`` (section 4.3: "a weighting factor g (from 0 to 1)"), else ``ConfigError``.

    ``g = 0`` would never move the meta-model, so it is excluded.
    """
    if not (isinstance(g, (int, float)) and 0.0 < float(g) <= 1.0):
        raise ConfigError(f"weight generator factor g must satisfy 0 < g <= 1 (section 4.3), got {g!r}")
    return float(g)


# -- helpers ------------------------------------------------------------------------------


def recent_loss(history: jax.Array, filled: jax.Array) -> jax.Array:
    """``float32[W]``: each worker's sum of its ``filled`` newest losses; non-finite -> +inf."""
    h = history.shape[-1]
    valid = jnp.arange(h) >= h - filled  # the newest ``filled`` columns
    total = jnp.sum(jnp.where(valid, history, 0.0), axis=-1)
    return jnp.where(jnp.isfinite(total), total, jnp.inf)


def mean_of(keep: jax.Array) -> jax.Array:
    """Weights of the arithmetic mean over the workers with ``keep`` (all workers if none)."""
    keep = keep | ~jnp.any(keep)  # the fallback: never an empty set
    k = keep.astype(jnp.float32)
    return k / jnp.sum(k)


def _one() -> jax.Array:
    return jnp.ones((), jnp.float32)


# -- the generators of section 4.3 ----------------------------------------------------------


def plain(history: jax.Array, filled: jax.Array, g: float = 1.0) -> Merge:
    """Arithmetic mean of all workers (Algorithm 4 line 7; section 4.3 "plain"). Losses unused."""
    w = history.shape[0]
    return Merge(jnp.full((w,), 1.0 / w, jnp.float32), _one())


def loss_median(history: jax.Array, filled: jax.Array, g: float = 1.0) -> Merge:
    """Drop the workers whose recent loss is worse than the median, average the rest (section 4.3).

    Recent loss: the sum of the last ``filled <= H`` epoch losses. "Worse than the median"
    is ``loss > median`` (ties with the median are kept); for an even number of workers the
    median is the mean of the two middle values (``jnp.median``), so at least half of the
    workers are kept and the set is never empty unless every loss is non-finite (then: all).
    """
    s = recent_loss(history, filled)
    finite = jnp.isfinite(s)
    med = jnp.nanmedian(jnp.where(finite, s, jnp.nan))
    return Merge(mean_of(finite & (s <= med)), _one())


def weighted(history: jax.Array, filled: jax.Array, g: float = 1.0) -> Merge:
    """``g * mean + (1 - g) * old`` (section 4.3 "weighted"): the plain mean, moved only by ``g``.

    ``0 < g <= 1`` (``check_g``); ``g = 1`` is ``plain``. Losses unused.
    """
    w = history.shape[0]
    return Merge(jnp.full((w,), 1.0 / w, jnp.float32), jnp.asarray(g, jnp.float32))


def loss_moving_average(history: jax.Array, filled: jax.Array, g: float = 1.0) -> Merge:
    """Keep the workers whose loss is below the rolling average of the losses, average them (section 4.3).

    Rolling average: the mean over all workers of their last ``filled <= H`` epoch losses
    (the window of the loss history). A worker's loss: its newest epoch's loss. Kept:
    ``loss < rolling average`` (strictly below, as the thesis says). When no worker is below
    it (one worker; every loss equal; the first epoch with identical workers) all are
    averaged, i.e. ``plain``.
    """
    h = history.shape[-1]
    valid = (jnp.arange(h) >= h - filled)[None, :] & jnp.isfinite(history)
    avg = jnp.sum(jnp.where(valid, history, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
    newest = history[:, -1]
    return Merge(mean_of(jnp.isfinite(newest) & (newest < avg)), _one())


register_weight_generator("plain", plain, "arithmetic mean of every worker (Algorithm 4)")
register_weight_generator("loss-median", loss_median, "mean of the workers whose recent loss sum <= the median")
register_weight_generator("weighted", weighted, "g * mean + (1 - g) * previous meta-model, 0 < g <= 1", uses_g=True)
register_weight_generator(
    "loss-moving-average", loss_moving_average, "mean of the workers whose newest loss < the rolling average"
)

__all__ = [
    "GeneratorFn",
    "Merge",
    "WeightGenerator",
    "check_g",
    "loss_median",
    "loss_moving_average",
    "mean_of",
    "plain",
    "recent_loss",
    "register_weight_generator",
    "weight_generator",
    "weight_generators",
    "weighted",
]
