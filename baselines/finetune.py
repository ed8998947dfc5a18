"""The "pretrain, then fine-tune" reference of Finn et al. 2017 (Fig. 2, "pretrained").

* Regression: one model is trained on all training tasks jointly (each ``meta_train_step``
  regresses the support and query points of its ``meta_batch`` tasks with a single set
  of parameters, Adam ``lr``). At evaluation it is fine-tuned on the task's support set
  with the same plain gradient steps as MAML (``inner_lr``, ``eval_steps``; defaults
  are MAML's, see ``metabench.baselines.maml``).
* Classification: pre-training a standard classifier over the training classes is out of
  scope, so this learner trains **from scratch on the support set**: ``adapt`` /
  ``eval_curve`` draw fresh Conv-4 parameters from their ``key`` and take the same inner
  steps; ``meta_train_step`` leaves the state unchanged and reports the query loss of a
  from-scratch initialisation (no meta-training happens).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metabench.baselines._inner import adaptation_curve, inner_adapt
from metabench.baselines.backbones import model_for, supervised_loss
from metabench.baselines.maml import _defaults
from metabench.learner import Learner, LearnerConfig, task_metric
from metabench.tasks import PRNGKey, SupervisedTask


class FinetuneState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32[]


class PretrainFinetune(Learner):
    """Joint pre-training (regression) or training from scratch (classification), then SGD fine-tuning."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """meta_batch: tasks per pre-training step (0: MAML's default for the env).
        lr: Adam learning rate of pre-training. inner_lr, eval_steps: fine-tuning SGD
        (``None``: MAML's defaults for the env). channels, depth, hidden: backbone sizes.
        """

        meta_batch: int = 0
        lr: float = 1e-3
        inner_lr: float | None = None
        eval_steps: int | None = None
        channels: int = 64
        depth: int = 4
        hidden: tuple[int, ...] = (40, 40)

    def __init__(self, env: Any, config: Config, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        d = _defaults(env)
        self.config = dataclasses.replace(
            config,
            meta_batch=config.meta_batch or d["meta_batch"],
            inner_lr=d["inner_lr"] if config.inner_lr is None else config.inner_lr,
            eval_steps=d["eval_steps"] if config.eval_steps is None else config.eval_steps,
        )
        self.kind = env.spec.kind
        c = self.config
        self.model = model_for(env, channels=c.channels, depth=c.depth, hidden=tuple(c.hidden))
        self.optimizer = optax.adam(c.lr)
        self.from_scratch = self.kind == "classification"

    def loss(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return supervised_loss(self.kind, self.model.apply(params, x), y)

    def init(self, key: PRNGKey) -> FinetuneState:
        params = self.model.init(key)
        return FinetuneState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def _start(self, state: FinetuneState, key: PRNGKey) -> Any:
        return self.model.init(key) if self.from_scratch else state.params

    def meta_train_step(self, state: FinetuneState, tasks: SupervisedTask, key: PRNGKey) -> tuple[FinetuneState, dict]:
        if self.from_scratch:
            out = jax.vmap(self.model.apply, (None, 0))(self.model.init(key), tasks.query[0])
            loss = jax.vmap(lambda o, y: supervised_loss(self.kind, o, y))(out, tasks.query[1]).mean()
            return state._replace(step=state.step + 1), {"loss": loss}
        x = jnp.concatenate([tasks.support[0], tasks.query[0]], axis=1)
        y = jnp.concatenate([tasks.support[1], tasks.query[1]], axis=1)
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        loss, grads = jax.value_and_grad(self.loss)(state.params, x, y)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        return FinetuneState(optax.apply_updates(state.params, updates), opt_state, state.step + 1), {"loss": loss}

    def adapt(self, state: FinetuneState, support: Any, key: PRNGKey) -> Any:
        c = self.config
        return inner_adapt(self.loss, self._start(state, key), tuple(support), c.inner_lr, c.eval_steps, first_order=True)

    def predict(self, state: FinetuneState, adapted: Any, x: jax.Array) -> jax.Array:
        return self.model.apply(adapted, x)

    def eval_curve(self, state: FinetuneState, task: SupervisedTask, key: PRNGKey) -> jax.Array:
        """Query metric after 0..``eval_steps`` fine-tuning steps: ``float32[eval_steps + 1]``."""
        c = self.config
        metric = lambda p, x, y: task_metric(self.kind, self.model.apply(p, x), y)  # noqa: E731
        return adaptation_curve(
            self.loss, metric, self._start(state, key), tuple(task.support), tuple(task.query), c.inner_lr, c.eval_steps
        )
