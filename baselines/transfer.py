"""Transfer-learning baselines: Baseline, Baseline++ (Chen et al. 2019), train-from-scratch, pretrain-finetune.

``TransferLearner`` (ids ``baseline`` = ``finetune``, ``baseline++``, ``train-from-scratch``;
seed 003 Tables 3.1 / 3.4 "TrainFromScratch", "Finetuning", "Baseline++", which follow
Chen et al. 2019, "A Closer Look at Few-shot Classification", ICLR):

* **Pre-training** (``baseline``, ``baseline++``): a Conv-4 backbone (``backbones.conv4_init``:
  3x3 conv, batch norm, ReLU, 2x2 max-pool; 64 features at 28x28, 1600 at 84x84) and a
  head over *all* classes of the env's training split, trained with cross-entropy on the
  env's non-episodic view (``ClassificationEnv.example_sampler``: global labels, epochs
  over the data, Chen et al.'s crop / jitter / flip with ``augment``), Adam (lr 1e-3,
  PyTorch's defaults), batch size 16 (Chen et al.'s ``train.py``: ``SimpleDataManager(
  image_size, batch_size=16)``, ``torch.optim.Adam(model.parameters())``). The harness
  draws the batches through ``train_batches`` (the learner's hook), so ``meta_train_step``
  receives ``Examples``; given episodic tasks instead (a caller without the hook) it
  ignores them and draws its own batch from the view with its key.
* **Heads.** ``head="linear"``: ``nn.Linear`` (pre-training head with zero bias, as their
  ``BaselineTrain``). ``head="cosine"`` (Baseline++): Chen et al.'s ``distLinear``, whose
  code differs from the paper, and the code is followed: the paper's class-wise cosine
  similarity times a scale factor becomes ``scale * g_c * cos(x, v_c)`` with a *learnable
  class-wise norm* ``g_c`` (``WeightNorm.apply(self.L, 'weight', dim=0)``, their issues
  #4 / #8), ``x / (||x|| + 1e-5)``, and the scale 2 for heads of at most 200 classes, 10
  for more ("in omniglot, a larger scale factor is required to handle >1000 output
  classes"). Head weights start as ``nn.Linear``'s ``U(-1/sqrt(F), 1/sqrt(F))``.
* **Test** (``methods/baselinefinetune.py``, ``set_forward_adaptation``): the backbone is
  frozen and a *new* head of ``ways`` outputs is trained on the support features, 100
  epochs over the support set in a fresh random order each, batches of 4 (the last one
  smaller), SGD lr 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3 (PyTorch's
  ``torch.optim.SGD``: the first step's momentum buffer is the raw gradient, no
  dampening). The paper's text describes the same (Sec. 3.1); where it is silent the
  code is followed. ``finetune="all"`` trains backbone and new head together with the
  same protocol (their ``Baseline`` "do not support finetune backbone"; an option here).
* **train-from-scratch**: the same network from a random initialisation (drawn from the
  evaluation key), trained on the support set only with the same protocol; no
  pre-training (``meta_train_step`` only reports the loss of a fresh initialisation).
* **Batch norm** (``bn``): ``"running"`` (default) keeps PyTorch's running averages
  (momentum 0.1, unbiased variance) during pre-training and fine-tuning, and features /
  predictions use them, as Chen et al. extract test features in ``model.eval()``
  (``save_features.py``). This departs from metabench's shared transductive batch norm
  (``backbones``) on purpose: a frozen backbone's features should not depend on the other
  images of a task. ``"batch"``: that shared convention (batch statistics everywhere;
  each forward pass's own batch statistics: support alone, queries alone).
* Not followed: their test-time resize to 1.15x and centre crop (metabench's frozen tasks
  are the same images for every learner), their ImageNet normalisation (see
  ``metabench.augment``), Chen et al.'s fan-out conv init (backbones' fan-in He init),
  their softmax padded to ``num_classes=200`` (``io_utils.py``; ``head_classes=200`` does
  it).

Evaluation is batched over tasks by the harness. Head-only fine-tuning with running batch
norm embeds every example a frozen set shows once (``shares_example_features``: the 600
omniglot-lite test tasks show 5,360 examples in 48,000 images) and trains the new heads of
a batch of tasks together (``vmap`` of Chen et al.'s loop); the values equal a per-task
loop of ``eval_curve`` (tested).

``PretrainFinetune`` (id ``pretrain-finetune``): Finn et al. 2017's Fig. 2 "pretrained"
reference for regression (unchanged, merged here from ``finetune.py``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metabench.baselines._inner import adaptation_curve, inner_adapt
from metabench.baselines.backbone_registry import BackboneRequest, FlaxModule, check_output, resolve_backbone
from metabench.baselines.backbones import (
    BN_EPS, _same_pad, conv3x3, conv4_feature_size, conv4_init, max_pool2, model_for, supervised_loss,
)
from metabench.baselines.maml import _defaults
from metabench.errors import ConfigError
from metabench.learner import Learner, LearnerConfig, task_metric
from metabench.registry import did_you_mean
from metabench.tasks import PRNGKey, SupervisedTask

Params = Any
#: PyTorch ``BatchNorm2d`` running-average momentum.
BN_MOMENTUM = 0.1
HEADS = ("linear", "cosine")
FINETUNES = ("head", "all")
BNS = ("running", "batch")
INITS = ("pretrained", "scratch")


# -- backbone with running batch-norm statistics --------------------------------------------------


def bn_stats_init(channels: int, depth: int) -> list[dict[str, jax.Array]]:
    """Running statistics of ``depth`` batch norms: mean 0, variance 1 (PyTorch's init)."""
    return [{"mean": jnp.zeros((channels,)), "var": jnp.ones((channels,))} for _ in range(depth)]


def conv3x3_im2col(x: jax.Array, w: jax.Array) -> jax.Array:
    """3x3 SAME stride-1 convolution as nine shifted slices + one matmul (NHWC x HWIO).

    Used inside ``lax.scan`` loops: XLA:CPU runs ``conv_general_dilated`` inside a while
    loop 10-20x slower than outside one (measured here: a Conv-4 SGD step on 4 Omniglot
    images 14 ms in a Python loop, 139 ms in ``scan``; with im2col 14 ms in both).
    """
    b, h, wd, c = x.shape
    _, h_lo, h_hi = _same_pad(h, 1)
    _, w_lo, w_hi = _same_pad(wd, 1)
    xp = jnp.pad(x, ((0, 0), (h_lo, h_hi), (w_lo, w_hi), (0, 0)))
    cols = jnp.concatenate([xp[:, i : i + h, j : j + wd, :] for i in range(3) for j in range(3)], axis=-1)
    return (cols.reshape(-1, 9 * c) @ w.reshape(9 * c, -1)).reshape(b, h, wd, -1)


def embed(params: Params, stats: Any, x: jax.Array, *, train: bool, bn: str = "running",
          im2col: bool = False) -> tuple[jax.Array, Any]:
    """Conv-4 features float32[B, F] of images float32[B, H, W, C], and the updated running stats.

    ``bn="running"``: ``train=True`` normalises with the batch statistics and updates the
    running averages (``m = 0.1``, unbiased variance, as ``torch.nn.BatchNorm2d``); ``train=False``
    normalises with the running averages. ``bn="batch"``: batch statistics always, ``stats``
    returned unchanged (``backbones.conv4_embed``). ``im2col``: convolve by ``conv3x3_im2col``
    (same values up to float rounding; fast inside loops on CPU).
    """
    h = x
    new_stats = []
    for blk, st in zip(params["blocks"], stats):
        h = conv3x3_im2col(h, blk["w"]) if im2col else conv3x3(h, blk["w"])
        if bn == "running" and not train:
            mean, var = st["mean"], st["var"]
            new_stats.append(st)
        else:
            mean = jnp.mean(h, axis=(0, 1, 2))
            var = jnp.mean(jnp.square(h - mean), axis=(0, 1, 2))
            count = h.shape[0] * h.shape[1] * h.shape[2]
            unbiased = var * count / max(count - 1, 1)
            if bn == "running":
                new_stats.append({"mean": (1 - BN_MOMENTUM) * st["mean"] + BN_MOMENTUM * jax.lax.stop_gradient(mean),
                                  "var": (1 - BN_MOMENTUM) * st["var"] + BN_MOMENTUM * jax.lax.stop_gradient(unbiased)})
            else:
                new_stats.append(st)
        h = (h - mean) * (blk["gamma"] * jax.lax.rsqrt(var + BN_EPS)) + blk["beta"]
        h = max_pool2(jax.nn.relu(h))
    return h.reshape(h.shape[0], -1), new_stats


# -- heads --------------------------------------------------------------------------------------


def head_init(key: PRNGKey, kind: str, features: int, n_out: int, *, zero_bias: bool = False) -> Params:
    """A new head: ``nn.Linear`` init ``U(-1/sqrt(F), 1/sqrt(F))``; cosine: ``{v, g = ||v_c||}``."""
    bound = 1.0 / math.sqrt(features)
    k_w, k_b = jax.random.split(key)
    w = jax.random.uniform(k_w, (features, n_out), minval=-bound, maxval=bound)
    if kind == "cosine":
        return {"v": w, "g": jnp.linalg.norm(w, axis=0)}
    b = jnp.zeros((n_out,)) if zero_bias else jax.random.uniform(k_b, (n_out,), minval=-bound, maxval=bound)
    return {"w": w, "b": b}


def cosine_scale(n_out: int) -> float:
    """``distLinear.scale_factor``: 2 for at most 200 classes, else 10 (Chen et al.'s code)."""
    return 2.0 if n_out <= 200 else 10.0


def head_apply(head: Params, f: jax.Array) -> jax.Array:
    """Logits float32[B, n] of features float32[B, F] (the head's kind is read from its keys)."""
    if "v" in head:
        fn = f / (jnp.linalg.norm(f, axis=-1, keepdims=True) + 1e-5)
        v = head["v"]
        cos = fn @ (v / jnp.linalg.norm(v, axis=0, keepdims=True))
        return cosine_scale(v.shape[1]) * cos * head["g"]
    return f @ head["w"] + head["b"]


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of float32[B, n] logits and int labels [B]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=-1))


# -- PyTorch SGD with dampening -------------------------------------------------------------------


def torch_sgd_step(params: Params, grads: Params, buf: Params, first: jax.Array, *, lr: float, momentum: float,
                   dampening: float, weight_decay: float) -> tuple[Params, Params]:
    """One ``torch.optim.SGD`` step (not Nesterov): ``d = g + wd p``; ``buf = d`` on the first step,
    else ``momentum buf + (1 - dampening) d``; ``p -= lr buf``. Returns ``(params, buf)``."""
    d = jax.tree_util.tree_map(lambda g, p: g + weight_decay * p, grads, params)
    buf = jax.tree_util.tree_map(lambda b, d_: jnp.where(first, d_, momentum * b + (1 - dampening) * d_), buf, d)
    return jax.tree_util.tree_map(lambda p, b: p - lr * b, params, buf), buf


# -- the learner --------------------------------------------------------------------------------


class TransferState(NamedTuple):
    params: Params  # {"backbone": Conv-4 blocks, "head": pre-training head}
    stats: Any  # running batch-norm statistics, one {mean, var} per block
    opt_state: Any
    step: jax.Array  # int32[]
    seed: jax.Array  # int32[]: drawn from the init key; folded into every test-time key (run seed matters)


def chen_epochs(env: Any) -> int:
    """Chen et al.'s pre-training epochs (``train.py``): 5 on (grey) Omniglot, 200 on CUB ("using 400
    epoch in baseline actually lead to over-fitting"), 400 on miniImageNet and mini -> CUB."""
    if env.image_shape[-1] == 1:
        return 5
    if env.spec.id.startswith("cub-") and "-to-" not in env.spec.id:
        return 200
    return 400


class TransferLearner(Learner):
    """Chen et al.'s Baseline / Baseline++ and train-from-scratch (module docstring)."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification"})

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """Transfer-learner hyperparameters (defaults: Chen et al.'s code, module docstring).

        init: ``"pretrained"`` (pre-train on the training split's classes) or ``"scratch"``
            (random initialisation per test task, no pre-training).
        head: ``"linear"`` (Baseline) or ``"cosine"`` (Baseline++, ``distLinear``).
        finetune: at test, train the new ``"head"`` on frozen features or ``"all"`` the network.
        bn: ``"running"`` (running averages, Chen et al.'s eval mode) or ``"batch"``.
        batch_size: pre-training images per step (16). lr: Adam rate of pre-training (1e-3).
        epochs: pre-training epochs of a run without ``--steps`` (``None``: Chen et al.'s, see
            ``chen_epochs``); batches go through the data in epochs (every example once per
            epoch in a fresh order, as their shuffled ``DataLoader``), ``--steps`` sets the length.
        augment: Chen et al.'s crop / colour jitter / flip at pre-training (RGB envs only).
        head_classes: outputs of the pre-training head (0: the training split's classes;
            Chen et al.'s code pads the softmax to 200).
        ft_epochs, ft_batch, ft_lr, ft_momentum, ft_dampening, ft_weight_decay: test-time
            fine-tuning (100 epochs, batches of 4, SGD 0.01 / 0.9 / 0.9 / 1e-3).
        channels, depth: Conv-4 width and blocks.
        meta_batch: unused by transfer learners (the harness records it; set to batch_size).
        backbone: the feature network: ``None`` (the landed Conv-4 with ``bn``), a registered name
            (``conv4``, ``resnet12``, ...) or a ``flax.linen.Module`` whose output is ``[batch, F]``;
            a module has batch-statistics batch norm only, so it needs ``bn="batch"`` (docs/backbones.md).
        """

        hash_omits_default: ClassVar[frozenset[str]] = frozenset({"backbone"})

        init: Literal["pretrained", "scratch"] = "pretrained"
        head: Literal["linear", "cosine"] = "linear"
        finetune: Literal["head", "all"] = "head"
        bn: Literal["running", "batch"] = "running"
        batch_size: int = 16
        lr: float = 1e-3
        epochs: int | None = None
        augment: bool = False
        head_classes: int = 0
        ft_epochs: int = 100
        ft_batch: int = 4
        ft_lr: float = 0.01
        ft_momentum: float = 0.9
        ft_dampening: float = 0.9
        ft_weight_decay: float = 1e-3
        channels: int = 64
        depth: int = 4
        meta_batch: int = 0
        backbone: str | FlaxModule | None = None

    def __init__(self, env: Any, config: Config, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        c = config
        for name, value, allowed in (("init", c.init, INITS), ("head", c.head, HEADS),
                                     ("finetune", c.finetune, FINETUNES), ("bn", c.bn, BNS)):
            if value not in allowed:
                raise ConfigError(f"transfer learner: {name}={value!r} is not one of {', '.join(allowed)}."
                                  f"{did_you_mean(str(value), list(allowed))}")
        for name in ("batch_size", "ft_epochs", "ft_batch", "channels", "depth"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"transfer learner: {name} must be a positive integer, got {v!r}")
        if c.epochs is not None and (isinstance(c.epochs, bool) or not isinstance(c.epochs, int) or c.epochs < 1):
            raise ConfigError(f"transfer learner: epochs must be a positive integer (or None: Chen et al.'s), got {c.epochs!r}")
        for name in ("head_classes", "meta_batch"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"transfer learner: {name} must be an integer >= 0, got {v!r}")
        if not (c.lr > 0 and c.ft_lr > 0):
            raise ConfigError(f"transfer learner: lr and ft_lr must be > 0, got {c.lr}, {c.ft_lr}")
        if not hasattr(env, "example_sampler"):
            raise ConfigError(
                f"transfer learner: {env.spec.id!r} has no non-episodic view (ClassificationEnv.example_sampler); "
                "transfer learners pre-train on every example of the training classes"
            )
        if c.init == "scratch" and c.finetune != "all":
            raise ConfigError("transfer learner: init='scratch' trains the whole network on the support set; "
                              "use finetune='all' (train-from-scratch sets it)")
        self.ways = int(env.ways)
        self.image_shape = tuple(int(s) for s in env.image_shape)
        #: the network of a ``backbone`` (``None``: the landed Conv-4 with running statistics, ``embed``)
        self.net: Any = None
        if c.backbone is not None:
            if c.bn != "batch":
                raise ConfigError(
                    f"transfer learner: backbone={c.backbone!r} needs bn='batch': a flax backbone normalises with "
                    "batch statistics only (no running averages); set bn=batch, or drop backbone for the landed "
                    "Conv-4 with running batch norm"
                )
            request = BackboneRequest("transfer learner", env.spec.kind, self.image_shape, None, c.channels, c.depth)
            self.net = resolve_backbone(c.backbone, request)
            self.features = check_output(self.net, request, c.batch_size, what="one feature vector per image",
                                         fix="Flatten the network's last feature map; the learner adds the head.")[1]
        else:
            self.features = conv4_feature_size(self.image_shape, c.channels, c.depth)
        self.n_classes = env.num_classes("train")
        if c.head_classes and c.head_classes < self.n_classes:
            raise ConfigError(
                f"transfer learner: head_classes={c.head_classes} but the training split of {env.spec.id} has "
                f"{self.n_classes} classes; the pre-training head needs one output per class (use 0 or >= {self.n_classes})"
            )
        self.head_outputs = c.head_classes or self.n_classes
        if c.augment:
            env._check_augment(True)  # the env's own error (RGB only)
        self.config = dataclasses.replace(c, meta_batch=c.meta_batch or c.batch_size)
        self.pretrains = c.init == "pretrained"
        self.optimizer = optax.adam(c.lr)
        if self.pretrains:
            self.examples_per_step = c.batch_size
            self.steps_per_epoch = env.steps_per_epoch(c.batch_size, "train")
            self.default_steps = (c.epochs or chen_epochs(env)) * self.steps_per_epoch
        else:
            self.default_steps = 1
            self.train_batches = None  # no pre-training: the harness's episodic batches (unused)
        self.default_val_every = 0  # Chen et al. evaluate the last pre-training epoch

    # -- pre-training ----------------------------------------------------------------------------
    def train_batches(self, env: Any) -> tuple[Any, Any]:
        """The harness hook: ``(sample(data, key, step) -> Examples, data)`` from the env's non-episodic view."""
        c = self.config
        return env.example_sampler(c.batch_size, "train", epochs=True, augment=c.augment)

    def init(self, key: PRNGKey) -> TransferState:
        c = self.config
        k_b, k_h = jax.random.split(key)
        backbone = self._backbone_init(k_b)
        head = head_init(k_h, c.head, self.features, self.head_outputs, zero_bias=True)
        params = {"backbone": backbone, "head": head}
        seed = jax.random.randint(jax.random.fold_in(key, 1), (), 0, 2**31 - 1, dtype=jnp.int32)
        return TransferState(params, self._stats_init(), self.optimizer.init(params),
                             jnp.zeros((), jnp.int32), seed)

    def _backbone_init(self, key: PRNGKey) -> Params:
        c = self.config
        if self.net is not None:
            return self.net.init(key)
        return conv4_init(key, self.image_shape, channels=c.channels, depth=c.depth)

    def _stats_init(self) -> Any:
        """Running batch-norm statistics of the landed Conv-4; none (``[]``) for a flax backbone."""
        return [] if self.net is not None else bn_stats_init(self.config.channels, self.config.depth)

    def _embed(self, params: Params, stats: Any, x: jax.Array, *, train: bool, im2col: bool = False) -> tuple[jax.Array, Any]:
        """``embed`` with the config's ``bn``, or a flax backbone's features (its stats unchanged)."""
        if self.net is not None:
            return self.net.apply(params, x), stats
        return embed(params, stats, x, train=train, bn=self.config.bn, im2col=im2col)

    def _pretrain_loss(self, params: Params, stats: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, Any]:
        f, new_stats = self._embed(params["backbone"], stats, x, train=True)
        logits = head_apply(params["head"], f)
        return cross_entropy(logits, y), (new_stats, jnp.mean(jnp.argmax(logits, -1) == y))

    def meta_train_step(self, state: TransferState, batch: Any, key: PRNGKey) -> tuple[TransferState, dict]:
        """One pre-training step on ``Examples`` (or, given episodic tasks, on a batch drawn with ``key``)."""
        from metabench.classification import Examples

        if not self.pretrains:
            return self._scratch_step(state, batch, key)
        if not isinstance(batch, Examples):  # no harness hook: draw from the view (pool closed over)
            sample, data = TransferLearner.train_batches(self, self.env)
            batch = sample(data, key, state.step)
        (loss, (stats, acc)), grads = jax.value_and_grad(self._pretrain_loss, has_aux=True)(
            state.params, state.stats, batch.x, batch.y)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TransferState(params, stats, opt_state, state.step + 1, state.seed), {"loss": loss, "accuracy": acc}

    def _scratch_step(self, state: TransferState, tasks: SupervisedTask, key: PRNGKey) -> tuple[TransferState, dict]:
        """No pre-training: the query loss of a fresh random network on the first task (a reference only)."""
        c = self.config
        backbone = self._backbone_init(jax.random.fold_in(key, 0))
        f, _ = self._embed(backbone, self._stats_init(), tasks.query[0][0], train=True)
        head = head_init(jax.random.fold_in(key, 1), c.head, self.features, self.ways)
        return state._replace(step=state.step + 1), {"loss": cross_entropy(head_apply(head, f), tasks.query[1][0])}

    def _fit(self, loss_fn: Any, params: Params, aux: Any, n: int, key: PRNGKey) -> tuple[Params, Any]:
        """Chen et al.'s loop: ``ft_epochs`` epochs over ``n`` support rows in random order, batches of
        ``ft_batch`` (the last smaller), PyTorch SGD. ``loss_fn(params, aux, idx) -> (loss, aux')``."""
        c = self.config
        full, rem = divmod(n, c.ft_batch)
        hp = dict(lr=c.ft_lr, momentum=c.ft_momentum, dampening=c.ft_dampening, weight_decay=c.ft_weight_decay)

        def step(carry: Any, idx: jax.Array) -> Any:
            p, a, buf, first = carry
            (_, a), g = jax.value_and_grad(loss_fn, has_aux=True)(p, a, idx)
            p, buf = torch_sgd_step(p, g, buf, first, **hp)
            return (p, a, buf, jnp.zeros((), bool)), None

        def epoch(carry: Any, k: PRNGKey) -> Any:
            perm = jax.random.permutation(k, n)
            if full:
                carry, _ = jax.lax.scan(step, carry, perm[: full * c.ft_batch].reshape(full, c.ft_batch))
            if rem:
                carry, _ = step(carry, perm[full * c.ft_batch:])
            return carry, None

        buf = jax.tree_util.tree_map(jnp.zeros_like, params)
        (params, aux, _, _), _ = jax.lax.scan(epoch, (params, aux, buf, jnp.ones((), bool)),
                                              jax.random.split(key, c.ft_epochs))
        return params, aux

    def adapt(self, state: TransferState, support: Any, key: PRNGKey) -> dict[str, Any]:
        """Fine-tune a new ``ways``-way head (and with ``finetune="all"`` the backbone) on ``support``."""
        c = self.config
        xs, ys = support
        if xs.shape[0] % self.ways:
            raise ConfigError(f"transfer learner: {xs.shape[0]} support examples do not split into {self.ways} ways")
        k_backbone, k_head, k_fit = jax.random.split(jax.random.fold_in(key, state.seed), 3)
        if self.pretrains:
            backbone, stats = state.params["backbone"], state.stats
        else:
            backbone = self._backbone_init(k_backbone)
            stats = self._stats_init()
        head = head_init(k_head, c.head, self.features, self.ways)
        if c.finetune == "head":
            f, _ = self._embed(backbone, stats, xs, train=False)  # eval mode (or the support's statistics)
            return {"head": self._fit_head(head, f, ys, k_fit), "backbone": backbone, "stats": stats}

        def net_loss(p: Params, st: Any, idx: jax.Array) -> tuple[jax.Array, Any]:
            f, st = self._embed(p["backbone"], st, xs[idx], train=True, im2col=True)
            return cross_entropy(head_apply(p["head"], f), ys[idx]), st

        p, stats = self._fit(net_loss, {"backbone": backbone, "head": head}, stats, xs.shape[0], k_fit)
        return {"head": p["head"], "backbone": p["backbone"], "stats": stats}

    def _fit_head(self, head: Params, f: jax.Array, ys: jax.Array, key: PRNGKey) -> Params:
        """The new head trained on frozen support features ``f`` float32[S, F] (Chen et al.'s loop)."""
        f = jax.lax.stop_gradient(f)

        def head_loss(h: Params, aux: Any, idx: jax.Array) -> tuple[jax.Array, Any]:
            pick = jax.nn.one_hot(idx, f.shape[0], dtype=f.dtype)  # [B, S]: a matmul, not a gather (vmaps well)
            return cross_entropy(head_apply(h, pick @ f), (pick @ ys.astype(f.dtype)).astype(jnp.int32)), aux

        return self._fit(head_loss, head, None, f.shape[0], key)[0]

    def batched_eval_curves(self, state: TransferState, tasks: SupervisedTask, keys: jax.Array) -> jax.Array:
        """``vmap(eval_curve)`` over a batch of tasks, float32[T, 1], batched for speed (the harness's hook).

        Head-only fine-tuning: the frozen backbone embeds each task's images in its own pass
        (``lax.map``: a [T * (S + Q)]-image convolution is memory-bound on a CPU; XLA's convolution,
        forward only, is as fast inside the loop as im2col and compiles ~4x faster), then the T new
        heads train together (``curves_from_features``). Whole-network fine-tuning: ``lax.map``
        of ``eval_curve`` (one compiled loop over the tasks). On an env's frozen sets the
        harness skips the per-task embedding where features are per image
        (``shares_example_features``).
        """
        c = self.config
        if c.finetune != "head":
            return jax.lax.map(lambda a: self.eval_curve(state, a[0], a[1]), (tasks, keys))
        (xs, ys), (xq, yq) = tasks.support, tasks.query
        backbone, stats = state.params["backbone"], state.stats

        def features(x: jax.Array) -> jax.Array:
            return self._embed(backbone, stats, x, train=False)[0]

        fs, fq = jax.lax.map(features, xs), jax.lax.map(features, xq)
        return self.curves_from_features(state, SupervisedTask(support=(fs, ys), query=(fq, yq)), keys)

    @property
    def shares_example_features(self) -> bool:
        """Whether the test-time features are a function of each image alone: head-only fine-tuning
        of the pre-trained Conv-4 in eval mode (``bn="running"``). Then the harness's ``Evaluator``
        embeds every example of a frozen set's tasks once (``example_features``; the 600
        omniglot-lite test tasks show 48,000 images of 5,360 examples) and fits the heads on
        gathered features (``curves_from_features``): the same values as ``batched_eval_curves``."""
        c = self.config
        return self.pretrains and c.finetune == "head" and c.bn == "running" and self.net is None

    def example_features(self, state: TransferState, x: jax.Array) -> jax.Array:
        """Frozen eval-mode features float32[B, F] of images ``x`` (per image under ``shares_example_features``)."""
        return self._embed(state.params["backbone"], state.stats, x, train=False)[0]

    def curves_from_features(self, state: TransferState, tasks: SupervisedTask, keys: jax.Array) -> jax.Array:
        """Head-only ``batched_eval_curves`` of tasks whose images are frozen features float32[T, S | Q, F]:
        the T new heads train together (``vmap`` of Chen et al.'s loop), float32[T, 1]."""
        c = self.config
        (fs, ys), (fq, yq) = tasks.support, tasks.query

        def one(f_s: jax.Array, y_s: jax.Array, f_q: jax.Array, y_q: jax.Array, key: PRNGKey) -> jax.Array:
            _, k_head, k_fit = jax.random.split(jax.random.fold_in(key, state.seed), 3)
            head = self._fit_head(head_init(k_head, c.head, self.features, self.ways), f_s, y_s, k_fit)
            return task_metric("classification", head_apply(head, f_q), y_q)[None]

        return jax.vmap(one)(fs, ys, fq, yq, keys)

    def predict(self, state: TransferState, adapted: dict[str, Any], x: jax.Array) -> jax.Array:
        """Logits float32[Q, ways]: eval-mode features (``bn="running"``) or the query batch's statistics."""
        f, _ = self._embed(adapted["backbone"], adapted["stats"], x, train=False)
        return head_apply(adapted["head"], f)

    def eval_curve(self, state: TransferState, task: SupervisedTask, key: PRNGKey) -> jax.Array:
        """Query accuracy after fine-tuning: float32[1]."""
        adapted = self.adapt(state, task.support, key)
        return task_metric("classification", self.predict(state, adapted, task.query[0]), task.query[1])[None]


# -- Finn et al. 2017's pretrain / fine-tune reference (merged from finetune.py, unchanged) -----------


class FinetuneState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32[]


class PretrainFinetune(Learner):
    """The "pretrain, then fine-tune" reference of Finn et al. 2017 (Fig. 2, "pretrained").

    * Regression: one model is trained on all training tasks jointly (each ``meta_train_step``
      regresses the support and query points of its ``meta_batch`` tasks with a single set
      of parameters, Adam ``lr``). At evaluation it is fine-tuned on the task's support set
      with the same plain gradient steps as MAML (``inner_lr``, ``eval_steps``; defaults
      are MAML's, see ``metabench.baselines.maml``).
    * Classification: this learner trains **from scratch on the support set** with MAML's
      inner steps (``adapt`` / ``eval_curve`` draw fresh Conv-4 parameters from their
      ``key``); ``meta_train_step`` leaves the state unchanged and reports the query loss
      of a from-scratch initialisation. Chen et al.'s transfer baselines, with pre-training
      on all training classes, are ``TransferLearner`` (``baseline``, ``baseline++``,
      ``train-from-scratch``).
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """meta_batch: tasks per pre-training step (0: MAML's default for the env).
        lr: Adam learning rate of pre-training. inner_lr, eval_steps: fine-tuning SGD
        (``None``: MAML's defaults for the env). channels, depth, hidden: backbone sizes.
        backbone: ``None`` (the landed Conv-4 / MLP), a registered name or a ``flax.linen.Module``
            whose output is the logits / predictions ``[batch, n_out]`` (docs/backbones.md).
        """

        hash_omits_default: ClassVar[frozenset[str]] = frozenset({"backbone"})

        meta_batch: int = 0
        lr: float = 1e-3
        inner_lr: float | None = None
        eval_steps: int | None = None
        channels: int = 64
        depth: int = 4
        hidden: tuple[int, ...] = (40, 40)
        backbone: str | FlaxModule | None = None

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
        self.model: Any = model_for(env, channels=c.channels, depth=c.depth, hidden=tuple(c.hidden))
        if c.backbone is not None:
            from metabench.baselines.gradient_learner import gradient_backbone

            self.model = gradient_backbone("pretrain-finetune", env, c)
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
