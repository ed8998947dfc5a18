"""An evolution-strategies meta-optimiser wrapped around another learner (seed 000).

``ESLearner`` trains the meta-parameters of an *inner* learner (ProtoNet's embedding,
MAML's initialisation, ...) with a population-based gradient estimate instead of
backpropagation through the task: WSR (eq. 9), finite differences, or any evosax
distribution strategy. The fitness of a candidate is the negative meta-loss of the inner
learner on the step's batch of tasks (seed 000: the negative few-shot cross-entropy).

The inner learner must provide three hooks (override ``_meta_params``,
``_with_meta_params``, ``_meta_loss`` in a subclass when its names differ):

    inner.meta_params(state) -> params pytree
    inner.with_meta_params(state, params) -> state
    inner.meta_loss(params, tasks, key) -> float32[]   # mean loss over the task batch

Adaptation, prediction and evaluation are delegated to the inner learner with its
meta-parameters replaced by the ES mean ``mu``.

State: ``ESState`` (below). The population is sharded over the ``pop`` axis of the mesh
passed to the constructor (None: all devices); ``init`` replicates the state on it.

Collapse (seed 000, Table II "Collapse"): when any candidate's fitness or the gradient is
not finite, the step is *not* applied, ``collapsed`` latches to 1 and ``collapse_step``
records the step; every later step leaves the state unchanged, and the metrics report
``collapsed=1`` instead of raising. The ``loss`` metric is the mean loss of the candidates
whose loss is finite (the previous value if none is), so it stays finite and the harness,
which stops on a non-finite loss, keeps running and records the collapse.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh

from metabench.baselines.es.estimators import Estimator, finite_stats
from metabench.baselines.es.mesh import check_population, pop_mesh, pop_size, population_sharding, sharded_estimator
from metabench.distributed import is_traced, place_replicated
from metabench.errors import ConfigError
from metabench.learner import Learner, LearnerConfig, Metrics
from metabench.tasks import PRNGKey, Task

ESTIMATORS = ("wsr", "fd", "evosax")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class ESOptions(LearnerConfig):
    """ES hyperparameters (seed 000, Tables I-IV).

    estimator: ``wsr`` (eq. 9), ``fd`` (finite differences) or ``evosax``.
    strategy: evosax distribution strategy when ``estimator="evosax"`` (``Open_ES``, ``SNES``, ``PGPE``, ...).
    population: total population over all devices; ``0`` with ``fd`` means ``D + 1``
        rounded up to a multiple of the mesh size.
    population_per_device: if > 0, overrides ``population`` with this times the mesh size
        (the seed's "Pop. per core").
    sigma: noise standard deviation of eq. (8) (seed: 0.01 with alpha 1, 0.1 with alpha 10).
    fd_step: finite-difference nudge (seed: 0.001).
    alpha: step size (seed: plain SGD, ``mu <- mu + alpha * g``).
    es_optimizer: ``sgd`` (the seed) or ``adam`` (optax, learning rate ``alpha``).
    standardise: ``local`` (per-device fitness statistics, as the seed) or ``global``
        (all-gathered; independent of the number of devices).
    candidate_batch: candidates evaluated together per device: ``0`` all at once (vmap),
        ``k`` in chunks of ``k`` (``lax.map``; lower memory; ES-MAML needs ``1``). Default
        ``1``: vmapping a conv net over candidate parameters turns every convolution into a
        grouped one, which XLA's CPU backend runs slowly -- measured here (ProtoNet Conv-4
        16 channels, population 64, Omniglot 5w5s) at 2.04 s per step with ``0``, 1.17 s with
        ``8`` and 0.23 s with ``1``. On GPU/TPU try ``0``.
    antithetic: WSR with mirrored pairs ``+eps, -eps`` (Salimans et al. 2017; off in the seed).
    """

    estimator: Literal["wsr", "fd", "evosax"] = "wsr"
    strategy: str = "Open_ES"
    population: int = 64
    population_per_device: int = 0
    sigma: float = 0.01
    fd_step: float = 1e-3
    alpha: float = 1.0
    es_optimizer: Literal["sgd", "adam"] = "sgd"
    standardise: Literal["local", "global"] = "local"
    candidate_batch: int = 1
    antithetic: bool = False


def es_config(inner_config: type[LearnerConfig], name: str = "Config") -> type[LearnerConfig]:
    """A frozen config class with the inner learner's fields plus ``ESOptions``'.

    For fields both define (``meta_batch``) the inner learner's default wins.
    """
    clash = {f.name for f in dataclasses.fields(inner_config)} & {f.name for f in dataclasses.fields(ESOptions)}
    clash -= {f.name for f in dataclasses.fields(LearnerConfig)}
    if clash:
        raise TypeError(f"{inner_config.__qualname__} fields {sorted(clash)} clash with ESOptions")
    return dataclasses.make_dataclass(name, [], bases=(inner_config, ESOptions), frozen=True)


class ESState(NamedTuple):
    """ES learner state (replicated over the mesh).

    mu: float32[D] the search mean = the flattened meta-parameters.
    inner: the inner learner's state (its meta-parameters are stale; ``mu`` is authoritative).
    opt: optax state of ``es_optimizer`` (WSR/FD) or the evosax strategy state.
    step: int32[] meta-steps taken.
    collapsed: bool[] latched once a non-finite fitness or gradient appeared.
    collapse_step: int32[] step of the collapse, -1 if none.
    last_loss: float32[] the last finite ``loss`` metric (0 before the first step).
    """

    mu: jax.Array
    inner: Any
    opt: Any
    step: jax.Array
    collapsed: jax.Array
    collapse_step: jax.Array
    last_loss: jax.Array


class ESLearner(Learner):
    """ES meta-optimiser around ``inner_class`` (set by subclasses). See the module docstring."""

    inner_class: ClassVar[type[Learner]]
    Config: ClassVar[type[LearnerConfig]] = ESOptions

    def __init__(self, env: Any, config: LearnerConfig, mesh: Mesh | None = None):
        super().__init__(env, config, mesh=mesh)  # refuses env kinds outside ``kinds`` first
        inner_fields = {f.name for f in dataclasses.fields(self.inner_class.Config)}
        # the field values themselves (not to_dict(): a flax module backbone must reach the inner learner as a module)
        inner_config = self.inner_class.Config(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                                                  if f.name in inner_fields})
        self.inner: Any = self.inner_class(env, inner_config)
        #: evaluation delegates to the inner learner, so its evaluation mode carries over (ES-MAML)
        self.eval_per_task = bool(getattr(self.inner, "eval_per_task", False))
        self.pop_mesh = pop_mesh(mesh)
        cfg: ESOptions = config  # type: ignore[assignment]
        if cfg.estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {cfg.estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if cfg.es_optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown es_optimizer {cfg.es_optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not cfg.alpha > 0:
            raise ConfigError(f"alpha (the ES step size) must be > 0, got {cfg.alpha}")
        if cfg.population < 0 or cfg.population_per_device < 0:
            raise ConfigError("population and population_per_device must be >= 0")

        shapes = jax.eval_shape(lambda k: self._meta_params(self.inner.init(k)), jax.random.key(0))
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        flat, self.unravel = ravel_pytree(zeros)
        self.dim = int(flat.shape[0])
        shards = pop_size(self.pop_mesh)
        if cfg.population_per_device > 0:
            population = cfg.population_per_device * shards
        elif cfg.population == 0 and cfg.estimator == "fd":
            population = -(-(self.dim + 1) // shards) * shards
        else:
            population = cfg.population
        self.population = population
        check_population(population, self.pop_mesh)
        if cfg.estimator == "evosax" and cfg.antithetic:
            raise ConfigError(
                "antithetic applies to the WSR estimator; evosax strategies sample their own population "
                "(Open_ES mirrors it by default): drop antithetic=true or use estimator='wsr'"
            )
        if cfg.estimator == "evosax":
            from metabench.baselines.es.evosax_adapter import EvosaxAdapter

            self.estimator = None
            self.evosax: EvosaxAdapter | None = EvosaxAdapter(
                cfg.strategy,
                population,
                self.dim,
                sigma=cfg.sigma,
                learning_rate=cfg.alpha,
                adam=cfg.es_optimizer == "adam",
            )
        else:
            self.evosax = None
            self.estimator = Estimator(
                cfg.estimator, population, cfg.sigma, cfg.fd_step, cfg.standardise, cfg.candidate_batch, cfg.antithetic
            )
            self.estimator.check_dim(self.dim)
            self._estimate = sharded_estimator(self.estimator, self._fitness, self.pop_mesh)
        self.optimizer = optax.sgd(cfg.alpha) if cfg.es_optimizer == "sgd" else optax.adam(cfg.alpha)
        self._step = jax.jit(self._meta_train_step)

    # -- hooks onto the inner learner ------------------------------------------------------

    def _meta_params(self, inner_state: Any) -> Any:
        return self.inner.meta_params(inner_state)  # type: ignore[attr-defined]

    def _with_meta_params(self, inner_state: Any, params: Any) -> Any:
        return self.inner.with_meta_params(inner_state, params)  # type: ignore[attr-defined]

    def _meta_loss(self, params: Any, tasks: Task, key: PRNGKey) -> jax.Array:
        return self.inner.meta_loss(params, tasks, key)  # type: ignore[attr-defined]

    def _fitness(self, flat: jax.Array, tasks: Task, key: PRNGKey) -> jax.Array:
        """Seed 000: fitness = negative few-shot loss of the candidate's meta-parameters."""
        return -self._meta_loss(self.unravel(flat), tasks, key)

    # -- Learner protocol ------------------------------------------------------------------

    def init(self, key: PRNGKey) -> ESState:
        inner = self.inner.init(key)
        mu, _ = ravel_pytree(self._meta_params(inner))
        mu = mu.astype(jnp.float32)
        if self.evosax is not None:
            opt = self.evosax.init(jax.random.fold_in(key, 1), mu)
        else:
            opt = self.optimizer.init(mu)
        state = ESState(mu, inner, opt, jnp.int32(0), jnp.bool_(False), jnp.int32(-1), jnp.float32(0.0))
        return place_replicated(state, self.pop_mesh)

    def meta_train_step(self, state: ESState, tasks: Task, key: PRNGKey) -> tuple[ESState, Metrics]:
        """One ES update on a batch of tasks (leading task axis). Metrics: loss = mean candidate loss."""
        if not is_traced((tasks, key)):
            tasks, key = place_replicated((tasks, key), self.pop_mesh)
        return self._step(state, tasks, key)

    def _meta_train_step(self, state: ESState, tasks: Task, key: PRNGKey) -> tuple[ESState, Metrics]:
        if self.evosax is not None:
            mu, opt, loss_mean, loss_std, grad_norm, finite = self._evosax_update(state, tasks, key)
        else:
            est = self._estimate(state.mu, tasks, key)
            # ascent on fitness == descent on loss: optax gets -g
            updates, opt = self.optimizer.update(-est.grad, state.opt, state.mu)
            mu = optax.apply_updates(state.mu, updates)
            loss_mean, loss_std, finite = -est.fitness_mean, est.fitness_std, est.finite
            grad_norm = jnp.linalg.norm(est.grad)
        apply = finite & ~state.collapsed
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(apply, a, b), new, old)  # noqa: E731
        newly = ~finite & ~state.collapsed
        loss_mean = jnp.where(jnp.isfinite(loss_mean), loss_mean, state.last_loss)
        new_state = ESState(
            mu=keep(mu, state.mu),
            inner=state.inner,
            opt=keep(opt, state.opt),
            step=state.step + 1,
            collapsed=state.collapsed | ~finite,
            collapse_step=jnp.where(newly, state.step, state.collapse_step),
            last_loss=loss_mean,
        )
        metrics = {
            "loss": loss_mean,
            "loss_std": jnp.nan_to_num(loss_std),
            "grad_norm": grad_norm,  # NaN on the collapse step (only ``loss`` must stay finite)
            "update_norm": jnp.linalg.norm(new_state.mu - state.mu),  # 0 on a collapsed step
            "collapsed": new_state.collapsed.astype(jnp.float32),
            "collapse_step": new_state.collapse_step,
        }
        return new_state, metrics

    def _evosax_update(self, state: ESState, tasks: Task, key: PRNGKey) -> tuple[Any, ...]:
        assert self.evosax is not None
        k_ask, k_fit, k_tell = jax.random.split(key, 3)
        population, opt = self.evosax.ask(k_ask, state.opt)
        population = jax.lax.with_sharding_constraint(population, population_sharding(self.pop_mesh))
        batch = self.config.candidate_batch  # type: ignore[attr-defined]
        loss_fn = lambda p: -self._fitness(p, tasks, k_fit)  # noqa: E731
        if batch == 0 or batch >= self.population:
            loss = jax.vmap(loss_fn)(population)
        else:
            loss = jax.lax.map(loss_fn, population, batch_size=batch if batch > 1 else None)
        opt = self.evosax.tell(k_tell, population, loss, opt)
        mu = self.evosax.mean(opt)
        finite = jnp.all(jnp.isfinite(loss)) & jnp.all(jnp.isfinite(mu))
        mean, std, _ = finite_stats(loss)
        # evosax exposes no gradient; report the norm of its mean update instead
        return mu, opt, mean, std, jnp.linalg.norm(mu - state.mu), finite

    def inner_state(self, state: ESState) -> Any:
        """The inner learner's state with its meta-parameters set to ``mu``."""
        return self._with_meta_params(state.inner, self.unravel(state.mu))

    def meta_params(self, state: ESState) -> Any:
        return self.unravel(state.mu)

    def adapt(self, state: ESState, support: Any, key: PRNGKey) -> Any:
        return self.inner.adapt(self.inner_state(state), support, key)

    def predict(self, state: ESState, adapted: Any, x: jax.Array) -> jax.Array:
        return self.inner.predict(self.inner_state(state), adapted, x)

    def eval_curve(self, state: ESState, task: Task, key: PRNGKey) -> jax.Array:
        return self.inner.eval_curve(self.inner_state(state), task, key)

    def config_dict(self) -> dict[str, Any]:
        inner = self.inner.config.to_dict()  # the inner learner's resolved values (e.g. MAML's)
        return {**self.config.to_dict(), **inner, "population_total": self.population, "num_params": self.dim}
