"""Prototypical Networks (Snell et al. 2017) on a Conv-4 embedding.

Prototype of class ``k`` = mean of its support embeddings (eq. 1); logits of a query are
``-||f(x) - c_k||^2`` (eq. 2, ``distance="euclidean"``) or ``cosine_scale * cos(f(x), c_k)``
(``distance="cosine"``, the metric seed 000 finds better for its ES variant); loss =
softmax cross-entropy on the queries, averaged over the ``meta_batch`` episodes of a step;
Adam (``lr``, 1e-3 as in Snell et al.; ``lr_halve_every=N`` halves it every N steps, Snell et al.
section 3.1: "cut in half every 2000 episodes"). Classification envs only.

Batch norm uses batch statistics without running averages (see ``backbones``): every
forward pass embeds one episode's support *and* query images together, in training and at
evaluation, so ``adapt`` only stores the support set and ``predict`` embeds
``support + queries`` in one pass. With ``episode_map="reshape"`` the episodes of a
meta-batch are folded into one convolution batch with per-episode batch-norm statistics
(identical results to ``"vmap"``; a performance option).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metabench.baselines.backbone_registry import BackboneRequest, FlaxModule, check_output, resolve_backbone
from metabench.baselines.backbones import conv4_embed, conv4_init
from metabench.errors import ConfigError
from metabench.learner import Learner, LearnerConfig
from metabench.tasks import PRNGKey, SupervisedTask


class ProtoState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32[]


def proto_logits(
    emb_s: jax.Array, y_s: jax.Array, emb_q: jax.Array, ways: int, distance: str, scale: float
) -> jax.Array:
    """Logits ``float[Q, ways]`` from support embeddings ``[S, F]`` (labels ``[S]``) and queries ``[Q, F]``."""
    onehot = jax.nn.one_hot(y_s, ways, dtype=emb_s.dtype)  # [S, N]
    protos = (onehot.T @ emb_s) / jnp.maximum(onehot.sum(0), 1.0)[:, None]  # eq. 1: [N, F]
    if distance == "cosine":
        qn = emb_q * jax.lax.rsqrt(jnp.sum(emb_q**2, -1, keepdims=True) + 1e-12)
        pn = protos * jax.lax.rsqrt(jnp.sum(protos**2, -1, keepdims=True) + 1e-12)
        return scale * (qn @ pn.T)
    # eq. 2: -||q - c||^2 = 2 q.c - |q|^2 - |c|^2, as one matmul
    return 2.0 * emb_q @ protos.T - jnp.sum(emb_q**2, -1, keepdims=True) - jnp.sum(protos**2, -1)[None, :]


class ProtoNet(Learner):
    """Prototypical network; ``meta_batch`` episodes per Adam step."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    any_ways: ClassVar[bool] = True  # prototypes, no head: train 20-way, test 5-way (Snell et al.)

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """ProtoNet hyperparameters.

        meta_batch: episodes per step (Snell et al.: 1).
        lr: Adam learning rate; lr_halve_every: halve it every N steps (0: constant).
        distance: ``"euclidean"`` (eq. 2) or ``"cosine"``.
        cosine_scale: multiplies cosine similarities (a fixed softmax temperature).
        channels, depth: Conv-4 width and number of blocks.
        episode_map: ``"vmap"`` or ``"reshape"`` (fold episodes into one batch).
        backbone: the embedding network: ``None`` (the landed Conv-4 of ``channels``, ``depth``),
            a registered name (``conv4``, ``conv4-stride``, ``resnet12``, ...; sized by ``channels``,
            ``depth``), an entry point ``pkg.mod:attr`` or a ``flax.linen.Module`` (Python API) whose
            output is ``[batch, F]`` for any ``F`` (docs/backbones.md).
        """

        hash_omits_default: ClassVar[frozenset[str]] = frozenset({"backbone"})

        meta_batch: int = 1
        lr: float = 1e-3
        lr_halve_every: int = 0
        distance: Literal["euclidean", "cosine"] = "euclidean"
        cosine_scale: float = 10.0
        channels: int = 64
        depth: int = 4
        episode_map: Literal["vmap", "reshape"] = "reshape"
        backbone: str | FlaxModule | None = None

    def __init__(self, env: Any, config: Config, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        c = config
        if c.distance not in ("euclidean", "cosine"):
            raise ConfigError(f"protonet: distance must be 'euclidean' or 'cosine', got {c.distance!r}")
        if c.episode_map not in ("vmap", "reshape"):
            raise ConfigError(f"protonet: episode_map must be 'vmap' or 'reshape', got {c.episode_map!r}")
        if c.meta_batch < 1:
            raise ConfigError(f"protonet: meta_batch must be >= 1, got {c.meta_batch}")
        self.shots = int(env.shots)
        shapes = env.task_shapes("train")
        self.image_shape = tuple(shapes.support[0].shape[1:])
        #: the network of a ``backbone`` (``None``: the landed Conv-4 functions)
        self.net = None
        if c.backbone is not None:
            request = BackboneRequest("protonet", env.spec.kind, self.image_shape, None, c.channels, c.depth)
            self.net = resolve_backbone(c.backbone, request)
            check_output(self.net, request, int(shapes.support[0].shape[0]) + int(shapes.query[0].shape[0]),
                         what="one embedding per image (support and queries embedded together)",
                         fix="Flatten the network's last feature map, e.g. x.reshape(x.shape[0], -1).")
        if c.lr_halve_every < 0:
            raise ConfigError(f"protonet: lr_halve_every must be >= 0 (0: constant rate), got {c.lr_halve_every}")
        self.lr_schedule: optax.Schedule = (
            optax.exponential_decay(c.lr, c.lr_halve_every, 0.5, staircase=True)
            if c.lr_halve_every
            else optax.constant_schedule(c.lr)
        )
        # a constant rate stays a float: a schedule adds a step counter to the optimizer state,
        # which would change the state (and checkpoints) of every constant-rate run
        self.optimizer = optax.adam(self.lr_schedule if c.lr_halve_every else c.lr)

    def ways_of(self, n_support: int) -> int:
        """Ways of an episode with ``n_support`` support examples (``shots`` each; static).

        Training tasks may have more ways than the env (``train_env_overrides``), never other shots.
        """
        return n_support // self.shots

    def embed(self, params: Any, x: jax.Array, groups: int = 1) -> jax.Array:
        """Embeddings ``[B, F]`` of images ``[B, H, W, C]`` holding ``groups`` episodes (own batch statistics each)."""
        if self.net is None:
            return conv4_embed(params, x, groups=groups)
        return self.net.apply_grouped(params, x, groups)

    def logits(self, params: Any, support: tuple[jax.Array, jax.Array], xq: jax.Array) -> jax.Array:
        """Query logits ``[Q, N]`` of one episode (support and queries embedded in one pass)."""
        xs, ys = support
        emb = self.embed(params, jnp.concatenate([xs, xq], axis=0))
        c = self.config
        ways = self.ways_of(xs.shape[0])
        return proto_logits(emb[: xs.shape[0]], ys, emb[xs.shape[0] :], ways, c.distance, c.cosine_scale)

    def _batch_logits(self, params: Any, tasks: SupervisedTask) -> jax.Array:
        """Logits ``[T, Q, N]`` of a batch of episodes."""
        (xs, ys), (xq, _) = tasks.support, tasks.query
        if self.config.episode_map == "vmap":
            return jax.vmap(lambda s, y, q: self.logits(params, (s, y), q))(xs, ys, xq)
        t, s_n, q_n = xs.shape[0], xs.shape[1], xq.shape[1]
        x = jnp.concatenate([xs, xq], axis=1).reshape(t * (s_n + q_n), *xs.shape[2:])
        emb = self.embed(params, x, groups=t).reshape(t, s_n + q_n, -1)
        c = self.config
        ways = self.ways_of(s_n)
        fn = lambda e, y: proto_logits(e[:s_n], y, e[s_n:], ways, c.distance, c.cosine_scale)  # noqa: E731
        return jax.vmap(fn)(emb, ys)

    def loss(self, params: Any, tasks: SupervisedTask) -> tuple[jax.Array, jax.Array]:
        """Mean query cross-entropy over the episodes, and the mean query accuracy."""
        logits = self._batch_logits(params, tasks)
        yq = tasks.query[1]
        logp = jax.nn.log_softmax(logits, -1)
        ce = -jnp.mean(jnp.take_along_axis(logp, yq[..., None], -1))
        acc = jnp.mean(jnp.argmax(logits, -1) == yq)
        return ce, acc

    def init(self, key: PRNGKey) -> ProtoState:
        if self.net is not None:
            params = self.net.init(key)
        else:
            params = conv4_init(key, self.image_shape, channels=self.config.channels, depth=self.config.depth)
        return ProtoState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def meta_train_step(self, state: ProtoState, tasks: SupervisedTask, key: PRNGKey) -> tuple[ProtoState, dict]:
        (loss, acc), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, tasks)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return ProtoState(params, opt_state, state.step + 1), {"loss": loss, "accuracy": acc}

    def adapt(self, state: ProtoState, support: Any, key: PRNGKey) -> tuple[jax.Array, jax.Array]:
        """The support set itself: prototypes are computed in ``predict``'s joint forward pass."""
        return tuple(support)  # type: ignore[return-value]

    def predict(self, state: ProtoState, adapted: Any, x: jax.Array) -> jax.Array:
        return self.logits(state.params, adapted, x)
