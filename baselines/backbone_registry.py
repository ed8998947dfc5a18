"""Choosing a learner's network: the backbone table, user modules, and the checks at construction.

A learner's ``backbone`` config field is one of

* ``None`` (default): the landed functional network of ``backbones`` (Conv-4 / MLP from the
  learner's ``channels`` / ``depth`` / ``pool`` / ``hidden``), exactly as before the field
  existed; the field then stays out of the config hash (``hash_omits_default``);
* a registered **name** (``backbone_names()``): ``conv4`` (the learner's ``pool`` where it has
  one, else max-pooling), ``conv4-max``, ``conv4-stride``, ``mlp``, ``resnet12``; built by its
  factory from the learner's sizes (``BackboneRequest``);
* an **entry point** ``"package.module:attr"`` whose ``attr`` is a ``flax.linen.Module``
  instance or a module class callable without arguments (how the CLI reaches a user's network);
* a ``flax.linen.Module`` **instance** (the Python API: ``make_learner("maml", env, backbone=Net())``).

``resolve_backbone`` turns it into a ``ModuleModel``: ``init(key) -> params``,
``apply(params, x) -> outputs`` (the ``backbones.Model`` shape the learners call) and
``apply_grouped(params, x, groups)``. ``check_output`` runs ``jax.eval_shape`` on it at learner
construction and raises ``ConfigError`` naming the expected and the actual output shape.

Modules must be pure: only a ``params`` collection (no ``batch_stats``, no mutable state, no
dropout key), so ``apply`` can be differentiated through twice. The config hash and the result
JSON record a module as ``describe_backbone(module)``: its class path and its dataclass fields
(nested modules described alike); a field whose value has no stable description (a repr with a
memory address) is refused with a message, since it would make the hash differ from run to run.

This module does not import flax at import time (learners import ``FlaxModule`` for their
annotations); ``flax`` is imported when a backbone is resolved.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import ConfigError, RegistrationError, UnknownIdError
from metabench.learner import is_flax_module
from metabench.registry import did_you_mean, load_entry_point

#: The annotation of learners' ``backbone`` fields (``str | FlaxModule | None``): any
#: ``flax.linen.Module`` instance; an alias of ``Any`` so that annotating does not import flax.
FlaxModule = Any

Params = Any


@dataclasses.dataclass(frozen=True)
class BackboneRequest:
    """What a learner asks of a backbone, handed to a registered name's factory.

    learner: the learner id, for messages. kind: the env kind. input_shape: one example's shape
    (``(H, W, C)`` for images). n_out: outputs of the network's last layer (MAML: ``env.ways``
    logits; regression: the target size) or ``None`` for an embedding (ProtoNet, transfer
    learners add their own head). channels, depth, pool, hidden: the learner's size fields
    (``pool`` ``None`` where the learner has none).
    """

    learner: str
    kind: str
    input_shape: tuple[int, ...]
    n_out: int | None
    channels: int = 64
    depth: int = 4
    pool: str | None = None
    hidden: tuple[int, ...] = (40, 40)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: ``factory(request) -> flax.linen.Module`` and a one-line description."""

    name: str
    factory: Callable[[BackboneRequest], Any]
    description: str = ""


_TABLE: dict[str, BackboneSpec] = {}


def register_backbone(name: str, factory: Callable[[BackboneRequest], Any], description: str = "", *,
                      override: bool = False) -> BackboneSpec:
    """Add a backbone name (``factory(request)`` returns the flax module for a learner's request)."""
    if ":" in name:
        raise RegistrationError(f"backbone name {name!r} must not contain ':' (that spells an entry point)")
    if name in _TABLE and not override:
        raise RegistrationError(f"backbone {name!r} is already registered; pass override=True to replace it")
    spec = BackboneSpec(name, factory, description)
    _TABLE[name] = spec
    return spec


def backbone_names() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_TABLE)


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of a registered name; unknown names get a did-you-mean error."""
    if name not in _TABLE:
        raise UnknownIdError(
            f"unknown backbone {name!r}.{did_you_mean(name, backbone_names())} Registered backbones: "
            f"{', '.join(backbone_names())}; or give a flax.linen.Module instance, or an entry point "
            "'package.module:attr' naming one."
        )
    return _TABLE[name]


# -- the built-in names -----------------------------------------------------------------------------


def _conv4(pool: str | None) -> Callable[[BackboneRequest], Any]:
    def make(r: BackboneRequest) -> Any:
        from metabench.baselines.flax_backbones import Conv4

        return Conv4(channels=r.channels, depth=r.depth, pool=pool or r.pool or "max", n_out=r.n_out)

    return make


def _mlp(r: BackboneRequest) -> Any:
    from metabench.baselines.flax_backbones import MLP

    return MLP(sizes=(*r.hidden, r.n_out) if r.n_out is not None else tuple(r.hidden))


def _resnet12(r: BackboneRequest) -> Any:
    from metabench.baselines.flax_backbones import ResNet12

    c = r.channels  # 64 -> Lee et al.'s 64-160-320-640
    return ResNet12(channels=(c, int(2.5 * c), 5 * c, 10 * c), n_out=r.n_out)


register_backbone("conv4", _conv4(None), "Conv-4, the learner's pool (else 2x2 max-pooling); channels, depth from the learner")
register_backbone("conv4-max", _conv4("max"), "Conv-4 with 2x2 max-pooling, flattened")
register_backbone("conv4-stride", _conv4("stride"), "Conv-4 with stride-2 convolutions, spatial mean (Finn et al.'s Omniglot net)")
register_backbone("mlp", _mlp, "MLP of the learner's hidden sizes, ReLU (Finn et al.'s 40-40 for regression)")
register_backbone("resnet12", _resnet12,
                  "ResNet-12 (Lee et al. 2019), widths channels x (1, 2.5, 5, 10): 64-160-320-640 at channels=64")


# -- modules -------------------------------------------------------------------------------------------


def _module_fields(module: Any) -> dict[str, Any]:
    return {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
            if f.name not in ("parent", "name") and f.init}


def _describe_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_describe_value(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    if is_flax_module(value):
        return describe_backbone(value)
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, type) and issubclass(value, np.generic):
        return str(np.dtype(value))
    if isinstance(getattr(value, "dtype", None), np.dtype) and not hasattr(value, "shape"):  # jnp.float32
        return str(value.dtype)
    if isinstance(value, type) or callable(value):
        fn = getattr(value, "__wrapped__", value)
        mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
        if mod and qual and "<lambda>" not in qual and "<locals>" not in qual:
            return f"{mod}:{qual}"
    text = repr(value)
    if " at 0x" in text or "<lambda>" in text:
        raise ConfigError(
            f"backbone: cannot describe {where} = {text} for the config hash (its repr holds a memory address "
            "or a lambda, so the hash would differ from run to run). Use a module-level function or a value "
            "with a stable repr, or register the network with metabench.baselines.backbone_registry.register_backbone "
            "and pass its name."
        )
    return text


def describe_backbone(value: Any) -> Any:
    """What the config hash and the result JSON record for a backbone: a name as is, a module as
    ``{"module": "pkg.mod:Class", "fields": {...}}`` (ConfigError where a field has no stable description)."""
    if value is None or isinstance(value, str):
        return value
    if not is_flax_module(value):
        raise ConfigError(f"backbone must be a name, an entry point 'pkg.mod:attr' or a flax.linen.Module instance, "
                          f"got {type(value).__name__}: {value!r}")
    cls = type(value)
    if "<locals>" in cls.__qualname__:
        raise ConfigError(
            f"backbone: module class {cls.__qualname__} is defined inside a function; the config hash names a "
            "module by its class path, so define the class at module level"
        )
    fields = {k: _describe_value(v, f"{cls.__name__}.{k}") for k, v in _module_fields(value).items()}
    return {"module": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}


def backbone_label(value: Any) -> str:
    """A short name of a backbone for messages: the name, or the module's ``Class(field=..., ...)``."""
    if value is None or isinstance(value, str):
        return repr(value)
    if is_flax_module(value):
        args = ", ".join(f"{k}={v!r}" for k, v in _module_fields(value).items())
        return f"{type(value).__name__}({args})"
    return repr(value)


def backbone_module(value: Any, request: BackboneRequest) -> Any:
    """The flax module a ``backbone`` value stands for (a name's factory output, an entry point's target, the instance)."""
    import flax.linen as nn

    if isinstance(value, str):
        if ":" in value:
            try:
                target: Any = load_entry_point(value)
            except (ImportError, RegistrationError, ValueError) as e:
                raise ConfigError(f"{request.learner}: backbone {value!r}: {e}") from None
            if isinstance(target, type) and issubclass(target, nn.Module):
                target = target()
            if not is_flax_module(target):
                raise ConfigError(f"{request.learner}: backbone entry point {value!r} is a {type(target).__name__}, "
                                  "not a flax.linen.Module instance or class")
            return target
        return backbone_spec(value).factory(request)
    if is_flax_module(value):
        return value
    raise ConfigError(f"{request.learner}: backbone must be None, a registered name ({', '.join(backbone_names())}), "
                      f"an entry point 'pkg.mod:attr' or a flax.linen.Module instance; got {type(value).__name__}")


class ModuleModel(NamedTuple):
    """A flax module as a learner's network: ``backbones.Model``'s ``init`` / ``apply`` plus grouped apply."""

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    apply_grouped: Callable[[Params, jax.Array, int], jax.Array]
    module: Any
    label: str


def _takes_groups(module: Any) -> bool:
    try:
        return "groups" in inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False


def module_model(module: Any, input_shape: Sequence[int], learner: str = "learner") -> ModuleModel:
    """Wrap a pure flax module; ``input_shape`` is one example's shape (``init`` traces a batch of two).

    ``init``: the module's ``landed_init(key, input_shape)`` where it has one (``flax_backbones``:
    the landed parameters), else ``module.init({"params": key}, x)["params"]``; a module with
    other variable collections is refused. ``apply_grouped(p, x, groups)``: passes ``groups`` to
    a module whose ``__call__`` takes it, else vmaps ``apply`` over the ``groups`` sub-batches.
    """
    shape = tuple(int(s) for s in input_shape)
    label = backbone_label(module)

    landed = getattr(module, "landed_init", None)

    def init(key: jax.Array) -> Params:
        # not jitted: the landed initialisers' values are those of an un-jitted call (a jit
        # can fuse their scaling differently in the last bit); the caller's jit applies alike
        if callable(landed):
            return landed(key, shape)
        return flax_init(key)

    @jax.jit  # flax's init run op by op is slow (seconds for a ResNet-12); one compiled program instead
    def flax_init(key: jax.Array) -> Params:
        variables = module.init({"params": key}, jnp.zeros((2, *shape), jnp.float32))
        others = sorted(k for k in variables if k != "params")
        if others:
            raise ConfigError(
                f"{learner}: backbone {label} has variable collections {others} besides 'params'. metabench networks "
                "are pure functions of their parameters (batch norm with batch statistics, no running averages): use "
                "metabench.baselines.backbones.batch_norm (flax's nn.BatchNorm writes batch_stats even with "
                "use_running_average=False) and no other mutable state"
            )
        return dict(variables.get("params", {}))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x)

    grouped = _takes_groups(module)

    def apply_grouped(params: Params, x: jax.Array, groups: int) -> jax.Array:
        if groups == 1:
            return apply(params, x)
        if grouped:
            return module.apply({"params": params}, x, groups=groups)
        xs = x.reshape(groups, x.shape[0] // groups, *x.shape[1:])
        out = jax.vmap(apply, (None, 0))(params, xs)
        return out.reshape(x.shape[0], *out.shape[2:])

    return ModuleModel(init, apply, apply_grouped, module, label)


def resolve_backbone(value: Any, request: BackboneRequest) -> ModuleModel:
    """``backbone`` config value -> ``ModuleModel`` (``None`` is the landed network: not handled here)."""
    if value is None:
        raise ValueError("resolve_backbone: None is the learner's landed network")
    return module_model(backbone_module(value, request), request.input_shape, request.learner)


def check_output(model: ModuleModel, request: BackboneRequest, batch: int, *, what: str, fix: str) -> tuple[int, ...]:
    """Shape of ``model``'s output on ``batch`` examples (``jax.eval_shape``), checked against the request.

    ``request.n_out``: the output must be ``[batch, n_out]``; ``None``: any ``[batch, F]``. ``what``
    names what the learner uses the output for, ``fix`` how to make it fit. Returns the shape.
    """
    x = jax.ShapeDtypeStruct((batch, *request.input_shape), jnp.float32)
    who = f"{request.learner}: backbone {model.label}"
    try:
        params = jax.eval_shape(model.init, jax.random.key(0))
        out = jax.eval_shape(model.apply, params, x)
    except ConfigError:
        raise
    except Exception as e:  # the module's own error on these inputs
        raise ConfigError(f"{who} fails on inputs of shape {x.shape} ({type(e).__name__}: {e})") from None
    shape = tuple(getattr(out, "shape", ()))
    want = f"({batch}, {request.n_out})" if request.n_out is not None else f"({batch}, F)"
    if not hasattr(out, "shape") or len(shape) != 2 or shape[0] != batch or (
            request.n_out is not None and shape[1] != request.n_out):
        got = shape if hasattr(out, "shape") else type(out).__name__
        raise ConfigError(
            f"{who} maps inputs of shape {x.shape} to outputs of shape {got}; {request.learner} needs {what} "
            f"of shape {want}. {fix}"
        )
    return shape
