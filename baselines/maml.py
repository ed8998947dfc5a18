"""MAML: Model-Agnostic Meta-Learning (Finn et al. 2017; Algorithm 2 / section 3.3 of seed 002).

Inner loop (eq. 3.1): ``theta'_i = theta - alpha * grad L_i^support(theta)``, ``inner_steps``
times. Meta-objective: the query loss at ``theta'_i``, reduced over the meta-batch by its
**mean** (eq. 3.8, ``meta_reduce="mean"``, the default, as in Finn et al.'s code) or its
**sum** (eq. 3.3, ``meta_reduce="sum"``), minimised with Adam (``meta_lr``).

* second order (``first_order=False``, id ``maml``): the meta-gradient differentiates through
  the inner loop (eq. 3.4-3.6, Hessian-vector products included);
* first order (``first_order=True``, id ``maml-fo``): inner gradients are wrapped in
  ``stop_gradient``, so the meta-gradient is ``sum_i grad L_i^query(theta'_i)`` (eq. 3.7).

Backbones (``metabench.baselines.backbones``): Conv-4 with an N-way head for images, MLP
1-40-40-1 for regression. Batch norm uses the statistics of the current batch in the
inner loop, the outer loop and evaluation alike, without running averages (Finn et al.'s
reference behaviour, "transductive"): the support batch normalises itself in inner steps,
the query batch normalises itself in the meta-loss and at evaluation.

Defaults left at ``None`` (or ``meta_batch=0``) are resolved from the env when the learner
is built, following Finn et al. 2017 (section 5 and their published run commands):

=====================  ==========  ===========  ==========  ==========
env                    inner_lr    inner_steps  eval_steps  meta_batch
=====================  ==========  ===========  ==========  ==========
regression (sinusoid)  0.01        1            10          25
classification < 20w   0.4         1            3           32
classification >= 20w  0.1         5            5           16
=====================  ==========  ===========  ==========  ==========

``learner.config`` holds the resolved values (so results record what actually ran).

On RL envs (kind ``"rl"``) ``MAML(env, config)`` returns MAML for RL
(``metabench.baselines.maml_rl.MamlRL``, Finn et al. 2017 section 5.3), built from the
shared config names; its RL-only options are set through the ``maml-rl`` id.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metabench.baselines._inner import adaptation_curve, inner_adapt
from metabench.baselines.backbones import model_for, supervised_loss
from metabench.errors import ConfigError
from metabench.learner import Learner, LearnerConfig, task_metric
from metabench.tasks import PRNGKey, SupervisedTask


class MamlState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32[]


def _defaults(env: Any) -> dict[str, Any]:
    if env.spec.kind == "regression":
        return {"inner_lr": 0.01, "inner_steps": 1, "eval_steps": 10, "meta_batch": 25}
    if int(getattr(env, "ways", 5)) >= 20:
        return {"inner_lr": 0.1, "inner_steps": 5, "eval_steps": 5, "meta_batch": 16}
    return {"inner_lr": 0.4, "inner_steps": 1, "eval_steps": 3, "meta_batch": 32}


class MAML(Learner):
    """Second- or first-order MAML over a vmapped (or sequentially mapped) meta-batch."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression", "rl"})

    def __new__(cls, env: Any, config: Any = None, mesh: Any = None) -> Any:
        """On an RL env, ``MAML(env, config)`` is MAML for RL (``metabench.baselines.maml_rl``)."""
        if cls is MAML and getattr(getattr(env, "spec", None), "kind", None) == "rl":
            from metabench.baselines.maml_rl import MamlRL

            return MamlRL.from_maml_config(env, config if config is not None else cls.Config(), mesh)
        return super().__new__(cls)

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """MAML hyperparameters (``None`` / ``0``: resolved from the env, see the module table).

        meta_batch: tasks per meta-update (0: by env).
        inner_lr, inner_steps: alpha and the number of inner steps in meta-training.
        eval_steps, eval_inner_lr: inner steps / lr at evaluation (``eval_curve`` has
            ``eval_steps + 1`` entries); ``eval_inner_lr`` defaults to ``inner_lr``.
        meta_lr: Adam learning rate beta.
        first_order: eq. 3.7 instead of the full second-order meta-gradient.
        meta_reduce: ``"mean"`` (eq. 3.8) or ``"sum"`` (eq. 3.3) over the meta-batch.
        channels, depth: Conv-4 width/depth; hidden: MLP hidden sizes.
        pool: Conv-4 down-sampling: ``"auto"`` (``"stride"`` for single-channel images, i.e.
            Omniglot, ``"max"`` otherwise, as Finn et al. 2017 section 5.2), ``"stride"``
            (stride-2 convolutions, spatial mean) or ``"max"`` (2x2 max-pooling).
        inner_scan: run the inner loop with ``lax.scan`` instead of unrolling it.
        task_map: ``"auto"`` (``"vmap"`` for regression, ``"unroll"`` for images), ``"vmap"`` (tasks batched; per-task weights become grouped convolutions),
            ``"map"`` (``lax.map``: a while loop, one task at a time, lower peak memory) or
            ``"unroll"`` (a Python loop over tasks: ungrouped convolutions, no while loop; compile
            time grows with ``meta_batch``). On XLA CPU both grouped convolutions and
            convolutions inside while loops were measured very slow (bench_learners.py).
        """

        meta_batch: int = 0
        inner_lr: float | None = None
        inner_steps: int | None = None
        eval_steps: int | None = None
        eval_inner_lr: float | None = None
        meta_lr: float = 1e-3
        first_order: bool = False
        meta_reduce: str = "mean"
        channels: int = 64
        depth: int = 4
        hidden: tuple[int, ...] = (40, 40)
        inner_scan: bool = False
        task_map: str = "auto"
        pool: str = "auto"

    def __init__(self, env: Any, config: Config, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        d = _defaults(env)
        c = dataclasses.replace(
            config,
            meta_batch=config.meta_batch or d["meta_batch"],
            inner_lr=d["inner_lr"] if config.inner_lr is None else config.inner_lr,
            inner_steps=d["inner_steps"] if config.inner_steps is None else config.inner_steps,
            eval_steps=d["eval_steps"] if config.eval_steps is None else config.eval_steps,
        )
        c = dataclasses.replace(c, eval_inner_lr=c.inner_lr if c.eval_inner_lr is None else c.eval_inner_lr)
        if c.task_map == "auto":
            c = dataclasses.replace(c, task_map="unroll" if env.spec.kind == "classification" else "vmap")
        if c.pool == "auto":
            grey = env.spec.kind == "classification" and int(env.task_shapes("train").support[0].shape[-1]) == 1
            c = dataclasses.replace(c, pool="stride" if grey else "max")
        if c.pool not in ("max", "stride"):
            raise ConfigError(f"maml: pool must be 'auto', 'max' or 'stride', got {c.pool!r}")
        if c.meta_reduce not in ("mean", "sum"):
            raise ConfigError(f"maml: meta_reduce must be 'mean' (eq. 3.8) or 'sum' (eq. 3.3), got {c.meta_reduce!r}")
        if c.task_map not in ("vmap", "map", "unroll"):
            raise ConfigError(f"maml: task_map must be 'vmap', 'map' or 'unroll', got {c.task_map!r}")
        for name in ("inner_steps", "eval_steps"):
            if getattr(c, name) < 0:
                raise ConfigError(f"maml: {name} must be >= 0, got {getattr(c, name)}")
        if c.meta_batch < 1:
            raise ConfigError(f"maml: meta_batch must be >= 1, got {c.meta_batch}")
        self.config = c
        self.kind = env.spec.kind
        #: evaluation like training: per task where tasks are unrolled (images; 2.4x faster
        #: than vmapped evaluation for 5w1s on 2 CPU cores, same values)
        self.eval_per_task = c.task_map == "unroll"
        self.model = model_for(env, channels=c.channels, depth=c.depth, hidden=tuple(c.hidden), pool=c.pool)
        self.optimizer = optax.adam(c.meta_lr)

    # -- pieces ---------------------------------------------------------------------------
    def loss(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        """Support/query loss of one task: cross-entropy or MSE of ``model.apply(params, x)``."""
        return supervised_loss(self.kind, self.model.apply(params, x), y)

    def task_loss(self, params: Any, task: SupervisedTask) -> tuple[jax.Array, jax.Array]:
        """``(query loss, query metric)`` of one task after the meta-training inner loop."""
        c = self.config
        adapted = inner_adapt(
            self.loss, params, task.support, c.inner_lr, c.inner_steps, first_order=c.first_order, scan=c.inner_scan
        )
        out = self.model.apply(adapted, task.query[0])
        return supervised_loss(self.kind, out, task.query[1]), task_metric(self.kind, out, task.query[1])

    def meta_loss(self, params: Any, tasks: SupervisedTask) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Meta-objective over a batch of tasks: mean (eq. 3.8) or sum (eq. 3.3) of query losses."""
        if self.config.task_map == "vmap":
            losses, metrics = jax.vmap(self.task_loss, (None, 0))(params, tasks)
        elif self.config.task_map == "map":
            losses, metrics = jax.lax.map(lambda t: self.task_loss(params, t), tasks)
        else:  # "unroll": a Python loop over tasks, no while loop, ungrouped convolutions
            n = jax.tree_util.tree_leaves(tasks)[0].shape[0]
            outs = [self.task_loss(params, jax.tree_util.tree_map(lambda a: a[i], tasks)) for i in range(n)]
            losses, metrics = jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])
        total = jnp.sum(losses) if self.config.meta_reduce == "sum" else jnp.mean(losses)
        return total, (jnp.mean(losses), jnp.mean(metrics))

    def meta_grad(self, params: Any, tasks: SupervisedTask) -> tuple[Any, tuple[jax.Array, jax.Array]]:
        """``(meta-gradient, (mean query loss, mean query metric))``."""
        grads, aux = jax.grad(self.meta_loss, has_aux=True)(params, tasks)
        return grads, aux

    # -- the contract -----------------------------------------------------------------------
    def init(self, key: PRNGKey) -> MamlState:
        params = self.model.init(key)
        return MamlState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def meta_train_step(self, state: MamlState, tasks: SupervisedTask, key: PRNGKey) -> tuple[MamlState, dict]:
        grads, (loss, metric) = self.meta_grad(state.params, tasks)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        name = "accuracy" if self.kind == "classification" else "mse"
        return MamlState(params, opt_state, state.step + 1), {"loss": loss, name: metric}

    def adapt(self, state: MamlState, support: Any, key: PRNGKey) -> Any:
        c = self.config
        return inner_adapt(self.loss, state.params, tuple(support), c.eval_inner_lr, c.eval_steps, first_order=True)

    def predict(self, state: MamlState, adapted: Any, x: jax.Array) -> jax.Array:
        return self.model.apply(adapted, x)

    def eval_curve(self, state: MamlState, task: SupervisedTask, key: PRNGKey) -> jax.Array:
        """Query metric after 0, 1, ..., ``eval_steps`` inner steps: ``float32[eval_steps + 1]``."""
        c = self.config
        metric = lambda p, x, y: task_metric(self.kind, self.model.apply(p, x), y)  # noqa: E731
        return adaptation_curve(
            self.loss, metric, state.params, tuple(task.support), tuple(task.query), c.eval_inner_lr, c.eval_steps
        )
