"""The gradient-based learner core: seed 003's Algorithm 9 with the update rule plugged in.

MAML, the meta-learner LSTM and TURTLE share everything but line 8 of Algorithm 9 (the
inner update, ``metabench.baselines.update_rules``). This base class owns the rest:

* meta-parameters ``Theta`` = the base learner's initialisation ``theta`` plus the rule's
  meta-parameters ``phi`` (``split`` / ``init_meta``; MAML has no ``phi``);
* the inner loop: ``inner_steps`` (T) rule steps on the support set from ``theta``
  (``metabench.baselines._inner``), first order (``stop_gradient`` on the inner gradients
  and losses) or second order (backpropagation through the whole trajectory);
* the meta-objective (line 11): the query loss after T steps, reduced over the meta-batch
  by its mean (seed 002 eq. 3.8) or sum (seed 003 Algorithm 9, seed 002 eq. 3.3), minimised
  by Adam (``meta_lr``), optionally after clipping the meta-gradient (``meta_grad_clip``);
* the mapping over the meta-batch (vmap, ``lax.map`` or a Python loop) and the
  adaptation curves the harness evaluates (``eval_steps`` rule steps, metric after each).

Subclasses give ``name``, ``update_rule(train)``, ``env_defaults(env)`` and, with
meta-parameters of their own, ``init_meta`` / ``split``. Backbones: Conv-4 with an N-way
head (images) or the 1-40-40-1 MLP (regression), batch norm with batch statistics in the
inner loop, the outer loop and evaluation alike (``metabench.baselines.backbones``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metabench.baselines._inner import rule_adapt, rule_adaptation_curve
from metabench.baselines.backbone_registry import BackboneRequest, FlaxModule, check_output, resolve_backbone
from metabench.baselines.backbones import conv4_feature_size, model_for, supervised_loss
from metabench.baselines.update_rules import UpdateRule
from metabench.errors import ConfigError
from metabench.learner import Learner, LearnerConfig, task_metric
from metabench.tasks import PRNGKey, SupervisedTask


class MamlState(NamedTuple):
    params: Any  # the meta-parameters Theta (MAML: theta itself)
    opt_state: Any
    step: jax.Array  # int32[]


class GradientLearner(Learner):
    """Algorithm 9 of seed 003 over a mapped meta-batch; see the module docstring."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    #: the learner id used in error messages
    name: ClassVar[str] = "gradient learner"

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """Hyperparameters every gradient-based learner shares (``None`` / ``0``: by env).

        meta_batch: tasks per meta-update (0: by env).
        inner_steps: T, the number of inner steps in meta-training.
        eval_steps: inner steps at evaluation (``eval_curve`` has ``eval_steps + 1`` entries).
        meta_lr: Adam learning rate beta.
        first_order: ``stop_gradient`` on inner gradients and losses (no second order).
        meta_reduce: ``"mean"`` (seed 002 eq. 3.8) or ``"sum"`` (eq. 3.3) over the meta-batch.
        channels, depth: Conv-4 width/depth; hidden: MLP hidden sizes.
        pool: Conv-4 down-sampling: ``"auto"`` (``"stride"`` for single-channel images, i.e.
            Omniglot, ``"max"`` otherwise, as Finn et al. 2017 section 5.2), ``"stride"``
            (stride-2 convolutions, spatial mean) or ``"max"`` (2x2 max-pooling).
        inner_scan: run the inner loop with ``lax.scan`` instead of unrolling it.
        task_map: ``"auto"`` (``"vmap"`` for regression, ``"unroll"`` for images), ``"vmap"``
            (tasks batched; per-task weights become grouped convolutions), ``"map"``
            (``lax.map``: a while loop, one task at a time, lower peak memory) or
            ``"unroll"`` (a Python loop over tasks: ungrouped convolutions, no while loop;
            compile time grows with ``meta_batch``). On XLA CPU both grouped convolutions
            and convolutions inside while loops were measured very slow (bench_learners.py).
        backbone: the network: ``None`` (the landed Conv-4 / MLP of ``channels``, ``depth``, ``pool``,
            ``hidden``), a registered name (``conv4`` (with ``pool``), ``conv4-max``, ``conv4-stride``,
            ``mlp``, ``resnet12``), an entry point ``pkg.mod:attr`` or a ``flax.linen.Module``
            (Python API) whose output is the logits ``[batch, ways]`` (regression: ``[batch, D_out]``);
            the inner loop adapts all its parameters (docs/backbones.md).
        """

        hash_omits_default: ClassVar[frozenset[str]] = frozenset({"backbone"})

        meta_batch: int = 0
        inner_steps: int | None = None
        eval_steps: int | None = None
        meta_lr: float = 1e-3
        first_order: bool = False
        meta_reduce: Literal["mean", "sum"] = "mean"
        channels: int = 64
        depth: int = 4
        hidden: tuple[int, ...] = (40, 40)
        inner_scan: bool = False
        task_map: Literal["auto", "vmap", "map", "unroll"] = "auto"
        pool: Literal["auto", "stride", "max"] = "auto"
        backbone: str | FlaxModule | None = None

    # -- hooks ------------------------------------------------------------------------------
    def env_defaults(self, env: Any, config: Any) -> dict[str, Any]:
        """Values for the config fields left at ``None`` (``meta_batch``: at 0)."""
        raise NotImplementedError

    def update_rule(self, train: bool) -> UpdateRule:
        """The inner update (line 8 of Algorithm 9) in meta-training or at evaluation."""
        raise NotImplementedError

    def init_meta(self, key: PRNGKey) -> Any:
        """Initial meta-parameters ``Theta`` (MAML: the backbone's parameters)."""
        return self.model.init(key)

    def split(self, meta_params: Any) -> tuple[Any, Any]:
        """``Theta -> (theta, phi)``: the base learner's initialisation and the rule's parameters."""
        return meta_params, ()

    def make_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.config.meta_lr)

    # -- construction ---------------------------------------------------------------------
    def __init__(self, env: Any, config: Any, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        d = self.env_defaults(env, config)
        fill = {k: v for k, v in d.items() if getattr(config, k) is None or (k == "meta_batch" and not config.meta_batch)}
        c = dataclasses.replace(config, **fill)
        if c.task_map == "auto":
            c = dataclasses.replace(c, task_map="unroll" if env.spec.kind == "classification" else "vmap")
        if c.pool == "auto":
            grey = env.spec.kind == "classification" and int(env.task_shapes("train").support[0].shape[-1]) == 1
            c = dataclasses.replace(c, pool="stride" if grey else "max")
        n = self.name
        if c.pool not in ("max", "stride"):
            raise ConfigError(f"{n}: pool must be 'auto', 'max' or 'stride', got {c.pool!r}")
        if c.meta_reduce not in ("mean", "sum"):
            raise ConfigError(f"{n}: meta_reduce must be 'mean' (eq. 3.8) or 'sum' (eq. 3.3), got {c.meta_reduce!r}")
        if c.task_map not in ("vmap", "map", "unroll"):
            raise ConfigError(f"{n}: task_map must be 'vmap', 'map' or 'unroll', got {c.task_map!r}")
        for name in ("inner_steps", "eval_steps"):
            if getattr(c, name) < 0:
                raise ConfigError(f"{n}: {name} must be >= 0, got {getattr(c, name)}")
        if c.meta_batch < 1:
            raise ConfigError(f"{n}: meta_batch must be >= 1, got {c.meta_batch}")
        self.config = c
        self.kind = env.spec.kind
        #: evaluation like training: per task where tasks are unrolled (images; 2.4x faster
        #: than vmapped evaluation for 5w1s on 2 CPU cores, same values)
        self.eval_per_task = c.task_map == "unroll"
        self.model: Any = model_for(env, channels=c.channels, depth=c.depth, hidden=tuple(c.hidden), pool=c.pool)
        if c.backbone is not None:
            self.model = gradient_backbone(n, env, c)
        self.optimizer = self.make_optimizer()

    # -- pieces ---------------------------------------------------------------------------
    def loss(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        """Support/query loss of one task: cross-entropy or MSE of ``model.apply(params, x)``."""
        return supervised_loss(self.kind, self.model.apply(params, x), y)

    def task_loss(self, params: Any, task: SupervisedTask) -> tuple[jax.Array, jax.Array]:
        """``(query loss, query metric)`` of one task after the meta-training inner loop."""
        c = self.config
        theta, phi = self.split(params)
        adapted = rule_adapt(
            self.loss, self.update_rule(True), phi, theta, task.support, c.inner_steps,
            first_order=c.first_order, scan=c.inner_scan,
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
        params = self.init_meta(key)
        return MamlState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def meta_train_step(self, state: MamlState, tasks: SupervisedTask, key: PRNGKey) -> tuple[MamlState, dict]:
        grads, (loss, metric) = self.meta_grad(state.params, tasks)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        name = "accuracy" if self.kind == "classification" else "mse"
        return MamlState(params, opt_state, state.step + 1), {"loss": loss, name: metric}

    def adapt(self, state: MamlState, support: Any, key: PRNGKey) -> Any:
        theta, phi = self.split(state.params)
        return rule_adapt(self.loss, self.update_rule(False), phi, theta, tuple(support), self.config.eval_steps,
                          first_order=True)

    def predict(self, state: MamlState, adapted: Any, x: jax.Array) -> jax.Array:
        return self.model.apply(adapted, x)

    def eval_curve(self, state: MamlState, task: SupervisedTask, key: PRNGKey) -> jax.Array:
        """Query metric after 0, 1, ..., ``eval_steps`` inner steps: ``float32[eval_steps + 1]``."""
        theta, phi = self.split(state.params)
        metric = lambda p, x, y: task_metric(self.kind, self.model.apply(p, x), y)  # noqa: E731
        return rule_adaptation_curve(self.loss, metric, self.update_rule(False), phi, theta, tuple(task.support),
                                     tuple(task.query), self.config.eval_steps)


def gradient_backbone(who: str, env: Any, c: Any) -> Any:
    """The ``ModuleModel`` of ``c.backbone`` for a gradient learner, its logits checked to be ``[S, n_out]``.

    ``n_out``: ``env.ways`` (classification) or the targets' size (regression); ``c.pool`` must be resolved.
    """
    shapes = env.task_shapes("train")
    xs, ys = shapes.support
    classify = env.spec.kind == "classification"
    n_out = int(env.ways) if classify else int(ys.shape[-1])
    request = BackboneRequest(who, env.spec.kind, tuple(int(s) for s in xs.shape[1:]), n_out, c.channels, c.depth,
                              pool=getattr(c, "pool", "max") if classify else None, hidden=tuple(c.hidden))
    model = resolve_backbone(c.backbone, request)
    what = f"logits over the env's {n_out} ways" if classify else f"predictions of the {n_out}-d targets"
    check_output(model, request, int(xs.shape[0]), what=what,
                 fix=f"End the network with a {n_out}-output linear layer (e.g. nn.Dense({n_out})); registered "
                     "names get the head from the learner.")
    return model


def check_memory(learner: GradientLearner, env: Any) -> None:
    """Refuse a second-order configuration whose activations cannot fit in host memory.

    A rough lower bound on what backpropagation through the inner loop keeps alive: the
    Conv-4 activations (conv, batch-norm and ReLU outputs of every block) of one support
    and one query pass, times ``inner_steps + 1``, times the tasks held at once
    (``meta_batch``, or 1 with ``task_map="map"``), plus the rule's per-parameter state and
    the meta-network's activations per step (the latter also first order: the meta-gradient
    of a learned rule backpropagates through every ``update``). Only raised when that bound
    exceeds the machine's physical memory, so the error replaces an XLA out-of-memory abort, it never refuses a run that could fit.
    """
    c = learner.config
    if env.spec.kind != "classification":
        return
    rule = learner.update_rule(True)
    if c.first_order and rule.activation_floats_per_param() == 0:
        return  # first-order SGD keeps nothing across inner steps
    shapes = env.task_shapes("train")
    n_img = int(shapes.support[0].shape[0]) + int(shapes.query[0].shape[0])
    h, w = (int(s) for s in shapes.support[0].shape[1:3])
    per_image = 0
    # the activation estimate is Conv-4's; other backbones are bounded by their parameters alone
    conv4 = c.backbone is None or c.backbone == "conv4"
    for _ in range(c.depth if conv4 else 0):
        if c.pool == "stride":
            h, w = -(-h // 2), -(-w // 2)
        per_image += 3 * h * w * c.channels
        if c.pool == "max":
            h, w = h // 2, w // 2
    if conv4:
        conv4_feature_size(tuple(shapes.support[0].shape[1:]), c.channels, c.depth, c.pool)  # validates the shape
    tasks = 1 if c.task_map == "map" else c.meta_batch
    n_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(jax.eval_shape(learner.model.init, jax.random.key(0))))
    per_param = rule.activation_floats_per_param() + (0 if c.first_order else 2 + rule.state_floats_per_param())
    per_step = 4 * ((0 if c.first_order else per_image * n_img) + n_params * per_param)
    need = per_step * (c.inner_steps + 1) * tasks
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no check
        return
    if need > total:
        raise ConfigError(
            f"{learner.name}: {'first' if c.first_order else 'second'}-order meta-training keeps at least {need / 2**30:.1f} GiB of activations "
            f"(meta_batch={c.meta_batch} tasks x inner_steps={c.inner_steps} steps on {env.spec.id}), more than "
            f"this machine's {total / 2**30:.1f} GiB. Lower meta_batch or inner_steps, set task_map='map' "
            f"(one task at a time) or first_order=True."
        )
