"""``EnvSpec``: the frozen, JSON-serialisable description of a registered task distribution.

Ids follow ``family-NwKs`` (classification), ``family-Ks`` (regression) or a plain
``family`` name (RL), with an optional ``-vN`` version suffix, as in gymnasium.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from metabench.errors import RegistrationError

_ID_RE = re.compile(r"^(?:(?P<ns>[\w.]+):)?(?P<name>[a-z0-9][a-z0-9_\-]*?)(?:-v(?P<version>\d+))?$")

#: Number of frozen evaluation tasks per split, by task kind (GUIDE.md section 2).
DEFAULT_EVAL_TASKS: Mapping[str, int] = MappingProxyType(
    {"classification": 600, "regression": 600, "rl": 40}
)


def parse_id(env_id: str) -> tuple[str | None, str, int | None]:
    """Split ``"[module:]name[-vN]"`` into ``(module, name, version)``."""
    m = _ID_RE.match(env_id)
    if m is None:
        raise RegistrationError(
            f"malformed id {env_id!r}: expected lower-case 'name' or 'name-vN', "
            "optionally prefixed by 'package.module:'"
        )
    version = m.group("version")
    return m.group("ns"), m.group("name"), int(version) if version is not None else None


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """A registered task distribution.

    Attributes:
        id: full id, e.g. ``"omniglot-5w1s"`` or ``"sinusoid-5s-v0"``.
        entry_point: ``"package.module:ClassName"``, imported lazily by ``make``.
        kind: ``"classification"``, ``"regression"`` or ``"rl"``.
        kwargs: constructor arguments of the env (ways, shots, queries, ...), after overrides.
        overrides: names of the kwargs that ``make(id, **overrides)`` changed.
        version: the ``-vN`` suffix; a changed distribution gets a new version.
        eval_tasks: number of frozen evaluation tasks per split.
        eval_seed: seed of the frozen evaluation sets (derived from the id by default).
        description: one line for listings.
        data_hash: content hash of the data the env was built from (filled in by ``make``).
    """

    id: str
    entry_point: str
    kind: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    version: int | None = None
    eval_tasks: int | None = None
    eval_seed: int | None = None
    description: str = ""
    data_hash: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_EVAL_TASKS:
            raise RegistrationError(
                f"{self.id}: kind must be one of {sorted(DEFAULT_EVAL_TASKS)}, got {self.kind!r}"
            )
        if ":" not in self.entry_point and not callable(self.entry_point):
            raise RegistrationError(
                f"{self.id}: entry_point must look like 'package.module:Name', got {self.entry_point!r}"
            )
        object.__setattr__(self, "kwargs", _freeze(dict(self.kwargs)))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        if self.version is None:
            object.__setattr__(self, "version", parse_id(self.id)[2])
        if self.eval_tasks is None:
            object.__setattr__(self, "eval_tasks", DEFAULT_EVAL_TASKS[self.kind])
        if self.eval_seed is None:
            object.__setattr__(self, "eval_seed", _stable_seed(self.id))

    @property
    def name(self) -> str:
        """The id without its version suffix."""
        return parse_id(self.id)[1]

    def replace(self, **changes: Any) -> EnvSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["kwargs"] = _thaw(self.kwargs)
        out["overrides"] = list(self.overrides)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise RegistrationError(f"EnvSpec.from_dict: unknown fields {sorted(unknown)}")
        return cls(**{**d, "overrides": tuple(d.get("overrides", ()))})

    @classmethod
    def from_json(cls, s: str) -> EnvSpec:
        return cls.from_dict(json.loads(s))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnvSpec) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())


def _stable_seed(text: str) -> int:
    """A process-independent 31-bit seed from a string (Python's ``hash`` is salted)."""
    import hashlib

    name = parse_id(text)[1] if _ID_RE.match(text) else text
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF
