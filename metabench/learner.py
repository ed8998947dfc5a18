"""The Learner contract and the learner registry.

Every learner has one constructor shape, ``Learner(env, config, mesh=None)``, and one
protocol of pure functions over explicit keys and a state pytree:

    state            = learner.init(key)
    state, metrics   = learner.meta_train_step(state, tasks, key)   # tasks: a batch (leading axis)
    adapted          = learner.adapt(state, support, key)           # one task's support data
    outputs          = learner.predict(state, adapted, x_query)     # logits or regression outputs
    curve            = learner.eval_curve(state, task, key)         # float32[S]: metric after 0..S-1 steps

``eval_curve`` returns the env's metric (accuracy for classification, MSE for regression,
return for RL) per adaptation step; the harness vmaps it over the frozen evaluation
tasks and reports its last entry as the headline. Learners that do not adapt in steps
return a curve of length one.

Sharding: a learner whose state lives on a ``jax.sharding.Mesh`` receives it in the
constructor and places its state itself in ``init`` (``NamedSharding``); the harness
never inspects shardings, it only passes pytrees through jitted functions and
checkpoints them with ``jax.device_get``.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import json
import sys
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from metabench.config_fields import check_choices, choices_of, coerce_choice, format_fields
from metabench.errors import ConfigError, RegistrationError
from metabench.registry import Table, did_you_mean, load_entry_point
from metabench.tasks import PRNGKey, SupervisedTask, Task

State = Any
Metrics = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Hyperparameters shared by every learner; subclasses add their own fields.

    meta_batch: tasks per ``meta_train_step``.
    """

    meta_batch: int = 4

    #: Fields left out of the config hash while they hold their default: options added after
    #: results were published whose default reproduces those results, so that the results'
    #: hashes (and file names) stay valid. A non-default value is hashed as usual.
    hash_omits_default: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        check_choices(self)  # Literal-typed fields: one of their values, else a did-you-mean error

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (``dataclasses.asdict``); a ``flax.linen.Module`` value (a
        ``backbone``) as its description (``backbone_registry.describe_backbone``: class path and fields)."""
        modules = [f.name for f in dataclasses.fields(self) if is_flax_module(getattr(self, f.name))]
        if not modules:
            return dataclasses.asdict(self)
        from metabench.baselines.backbone_registry import describe_backbone

        shadow = copy.copy(self)
        for name in modules:
            object.__setattr__(shadow, name, None)
        out = dataclasses.asdict(shadow)
        for name in modules:
            out[name] = describe_backbone(getattr(self, name))
        return out

    def hash_dict(self) -> dict[str, Any]:
        """``to_dict()`` without the ``hash_omits_default`` fields that hold their default (what the
        harness hashes)."""
        return self._omit_defaults(self.to_dict())

    def _omit_defaults(self, values: Mapping[str, Any]) -> dict[str, Any]:
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {k: v for k, v in values.items()
                if not (k in self.hash_omits_default and k in defaults and v == defaults[k])}

    def matches(self, recorded: Mapping[str, Any]) -> bool:
        """Whether a result's recorded ``learner.config`` is this config: compared as the harness
        hashes them, so a record written before a ``hash_omits_default`` field existed matches
        a config that holds that field's default."""
        return self._omit_defaults(json.loads(json.dumps(self.to_dict(), default=str))) == self._omit_defaults(recorded)


def is_flax_module(value: Any) -> bool:
    """A ``flax.linen.Module`` instance (flax is never imported here: without it loaded there is none)."""
    linen = sys.modules.get("flax.linen")
    return linen is not None and isinstance(value, linen.Module)


class Learner(abc.ABC):
    """Base class of every learner. See the module docstring for the protocol."""

    #: Env kinds this learner supports ("classification", "regression", "rl").
    kinds: ClassVar[frozenset[str]] = frozenset()
    #: True if meta-training tasks may have another number of ways than the env's
    #: (no N-way head: ProtoNet); the harness's ``train_env_overrides`` need it.
    any_ways: ClassVar[bool] = False
    #: True: the harness evaluates one task per jitted ``eval_curve`` call instead of vmapping
    #: it over a batch of tasks (MAML on images: vmapped per-task weights become grouped
    #: convolutions, which XLA CPU runs slowly). Same values either way.
    eval_per_task: bool = False
    #: Meta-training steps a run uses when it sets none (``RunConfig.steps = None``): the
    #: published budget of this learner on this env, or None for the harness default.
    default_steps: int | None = None
    #: Validation interval a run uses when it sets none (``RunConfig.val_every = None``), or
    #: None for the harness default.
    default_val_every: int | None = None
    Config: ClassVar[type[LearnerConfig]] = LearnerConfig
    #: A line ``metabench list learners ID`` prints after the options (where else to look).
    help_note: ClassVar[str] = ""

    def __init__(self, env: Any, config: LearnerConfig, mesh: jax.sharding.Mesh | None = None):
        if env.spec.kind not in self.kinds:
            raise ConfigError(
                f"{type(self).__name__} does not support {env.spec.kind} envs like {env.spec.id!r}; "
                f"it supports: {', '.join(sorted(self.kinds))}"
            )
        self.env = env
        self.config: Any = config  # the subclass's own Config (typed Any: Learner is not generic over it)
        self.mesh = mesh

    @abc.abstractmethod
    def init(self, key: PRNGKey) -> State:
        """Initial state pytree (meta-parameters, optimiser state, step counter)."""

    @abc.abstractmethod
    def meta_train_step(self, state: State, tasks: Task, key: PRNGKey) -> tuple[State, Metrics]:
        """One meta-update on a batch of tasks; returns scalar metrics (``loss`` at least)."""

    @abc.abstractmethod
    def adapt(self, state: State, support: Any, key: PRNGKey) -> Any:
        """Adapt to one task's support data; returns whatever ``predict`` needs."""

    @abc.abstractmethod
    def predict(self, state: State, adapted: Any, x: jax.Array) -> jax.Array:
        """Outputs on query inputs ``x``: logits float32[Q, N] or regression float32[Q, D]."""

    def eval_curve(self, state: State, task: Task, key: PRNGKey) -> jax.Array:
        """Metric on the task's queries after adaptation: float32[1] by default."""
        adapted = self.adapt(state, task.support, key)
        return task_metric(self.env.spec.kind, self.predict(state, adapted, task.query[0]), task.query[1])[None]

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()


def task_metric(kind: str, outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Accuracy (classification) or mean squared error (regression) of one task."""
    if kind == "classification":
        return jnp.mean(jnp.argmax(outputs, axis=-1) == targets).astype(jnp.float32)
    if kind == "regression":
        return jnp.mean((outputs - targets) ** 2)
    raise ConfigError(f"no supervised metric for kind {kind!r}")


# -- registry -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LearnerSpec:
    id: str
    entry_point: str
    description: str = ""
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


learner_registry: Table[LearnerSpec] = Table("learner", "metabench.pprint_learners() or `metabench list learners`")


def register_learner(
    id: str, entry_point: str, description: str = "", *, defaults: Mapping[str, Any] | None = None, override: bool = False
) -> LearnerSpec:
    spec = LearnerSpec(id, entry_point, description, dict(defaults or {}))
    learner_registry.add(id, spec, override)
    return spec


def learner_spec(id: str) -> LearnerSpec:
    return learner_registry[learner_registry.resolve(id)]


def learner_class(id: str) -> type[Learner]:
    return load_entry_point(learner_spec(id).entry_point)  # type: ignore[return-value]


def _coerce(field: dataclasses.Field[Any], value: Any, hints: Mapping[str, Any], where: str) -> Any:
    """Convert a ``--set key=value`` string to the field's type."""
    if not isinstance(value, str):
        return value
    t = hints.get(field.name, str)
    if choices_of(t) is not None:
        return coerce_choice(t, value)
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        t = next(a for a in args if a is not type(None))
    try:
        if t is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if t in (int, float, str):
            return t(value)
        if typing.get_origin(t) is tuple or t is tuple:
            inner = (typing.get_args(t) or (int,))[0]
            return tuple(inner(v) for v in value.strip("()").split(",") if v.strip())
    except ValueError as e:
        raise ConfigError(f"{where}: cannot read {field.name}={value!r} as {getattr(t, '__name__', t)}") from e
    return value


def make_config(cls: type[Learner], overrides: Mapping[str, Any], where: str = "learner") -> LearnerConfig:
    """``cls.Config`` with ``overrides`` applied; unknown keys get a did-you-mean error."""
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    hints = typing.get_type_hints(cls.Config)
    values = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown config key {key!r}.{did_you_mean(key, list(fields))} "
                f"Keys: {', '.join(sorted(fields))}."
            )
        values[key] = _coerce(fields[key], value, hints, where)
    try:
        return cls.Config(**values)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def make_learner(id: str, env: Any, mesh: jax.sharding.Mesh | None = None, **overrides: Any) -> Learner:
    """Build learner ``id`` for ``env`` with config overrides (strings are coerced)."""
    spec = learner_spec(id)
    cls = learner_class(id)
    if not isinstance(cls, type) or not issubclass(cls, Learner):
        raise RegistrationError(f"learner {id!r}: entry point {spec.entry_point} is not a Learner subclass")
    config = make_config(cls, {**spec.defaults, **overrides}, where=f"learner {spec.id!r}")
    return cls(env, config, mesh=mesh)


def learner_help(id: str) -> str:
    """Every config field of learner ``id``: type, default and doc line (``metabench list learners ID``)."""
    key = learner_registry.resolve(id)
    spec = learner_registry[key]
    cls = learner_class(key)
    lines = [f"{spec.id}: {spec.description}", f"  class {cls.__module__}:{cls.__qualname__}"]
    if spec.defaults:
        lines.append("  registered defaults: " + ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()))
    lines.append(format_fields(cls.Config, "options (--set KEY=VALUE):"))
    note = getattr(cls, "help_note", "")
    if note:
        lines.append(note)
    return "\n".join(lines)


def pprint_learners(*, file: Any = None) -> None:
    import sys

    out = file or sys.stdout
    for key in sorted(learner_registry):
        s = learner_registry[key]
        print(f"  {s.id:<24} {s.description}", file=out)




__all__ = [
    "Learner",
    "LearnerConfig",
    "LearnerSpec",
    "SupervisedTask",
    "learner_help",
    "learner_registry",
    "learner_spec",
    "make_learner",
    "pprint_learners",
    "register_learner",
    "task_metric",
]
