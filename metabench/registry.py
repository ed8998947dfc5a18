"""The env registry: ``register``, ``make``, ``spec``, ``registry``, ``pprint_registry``.

Entry points are strings (``"package.module:Name"``) imported only when ``make`` needs
them, so ``import metabench`` stays light. Ids resolve to their newest version unless a
``-vN`` suffix is given.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

from metabench.errors import ConfigError, RegistrationError, UnknownIdError
from metabench.spec import EnvSpec, parse_id

S = TypeVar("S")


def load_entry_point(entry_point: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``"package.module:Attr"`` and return the attribute."""
    if callable(entry_point):
        return entry_point
    module_name, _, attr = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"cannot import {module_name!r} for entry point {entry_point!r}: {e}. "
            "If it belongs to an optional extra, install it, e.g. pip install 'metabench[mujoco]'."
        ) from e
    try:
        return getattr(module, attr)
    except AttributeError as e:
        raise RegistrationError(f"entry point {entry_point!r}: {module_name} has no {attr!r}") from e


def did_you_mean(name: str, candidates: list[str], n: int = 3) -> str:
    """Return ``" Did you mean: a, b?"`` or an empty string."""
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not close:
        close = [c for c in candidates if name.split("-")[0] and c.startswith(name.split("-")[0])][:n]
    return f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""


class Table(Generic[S], Mapping[str, S]):
    """A versioned id -> spec table shared by the env and learner registries."""

    def __init__(self, what: str, list_hint: str):
        self._what = what
        self._hint = list_hint
        self._specs: MutableMapping[str, S] = {}
        self._spellings: dict[str, str] = {}

    def spell(self, spelling: str, key: str) -> None:
        """Let ``resolve`` accept ``spelling``, a name as the literature writes it that is not a
        valid id (e.g. ``"baseline++"``), for the registered ``key``."""
        self._spellings[spelling] = key

    def __getitem__(self, key: str) -> S:
        return self._specs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def add(self, key: str, spec: S, override: bool) -> None:
        if key in self._specs and not override:
            raise RegistrationError(
                f"{self._what} id {key!r} is already registered; pass override=True to replace it"
            )
        self._specs[key] = spec

    def remove(self, key: str) -> None:
        self._specs.pop(key, None)

    def resolve(self, query: str) -> str:
        """Return the registered key for ``query`` (newest version when none is given)."""
        if query in self._spellings:
            return self.resolve(self._spellings[query])
        module, name, version = parse_id(query)
        if module is not None:
            importlib.import_module(module)
        if version is not None:
            key = f"{name}-v{version}"
            if key in self._specs:
                return key
            versions = sorted(self.versions(name))
            if versions:
                raise UnknownIdError(
                    f"{self._what} {name!r} has no version v{version}; registered versions: "
                    + ", ".join(f"v{v}" for v in versions)
                )
        else:
            if name in self._specs:
                return name
            versions = self.versions(name)
            if versions:
                return f"{name}-v{max(versions)}"
        names = sorted({parse_id(k)[1] for k in self._specs})
        raise UnknownIdError(
            f"unknown {self._what} id {query!r}.{did_you_mean(name, names)} "
            f"See {self._hint} for every registered id."
        )

    def versions(self, name: str) -> list[int]:
        out = []
        for key in self._specs:
            _, n, v = parse_id(key)
            if n == name and v is not None:
                out.append(v)
        return out


registry: Table[EnvSpec] = Table("env", "metabench.pprint_registry() or `metabench list envs`")


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    kind: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    override: bool = False,
    **spec_fields: Any,
) -> EnvSpec:
    """Register a task distribution under ``id`` (``name`` or ``name-vN``)."""
    module, name, version = parse_id(id)
    if module is not None:
        raise RegistrationError(f"register: {id!r} must not carry a module prefix")
    spec = EnvSpec(id=id, entry_point=entry_point, kind=kind, kwargs=dict(kwargs or {}), **spec_fields)  # type: ignore[arg-type]
    registry.add(id, spec, override)
    from metabench.gym_ids import on_register

    on_register(spec)  # mirrored in gymnasium's registry when gymnasium is imported
    return spec


def spec(id: str) -> EnvSpec:
    """The registered spec of ``id`` (newest version when unversioned)."""
    return registry[registry.resolve(id)]


def _check_overrides(cls: Callable[..., Any], spec_: EnvSpec, overrides: Mapping[str, Any]) -> None:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n != "spec"]
    for key in overrides:
        if key not in params:
            raise ConfigError(
                f"make({spec_.id!r}): unknown option {key!r}.{did_you_mean(key, allowed)} "
                f"Options of this env: {', '.join(sorted(allowed))}."
            )


def make(id: str | EnvSpec, **overrides: Any) -> Any:
    """Build the env registered as ``id``; keyword overrides are recorded in ``env.spec``.

    >>> env = make("sinusoid-5s")
    >>> env = make("omniglot-5w1s", queries=5, root="~/data")

    With ``$METABENCH_COMPILE_CACHE=DIR`` set, JAX's persistent compilation cache is
    turned on in ``DIR`` (``metabench.data.compilation_cache_from_env``), so a later
    process loads the compiled task sampler instead of compiling it again.
    """
    base = id if isinstance(id, EnvSpec) else spec(id)
    cls = load_entry_point(base.entry_point)
    _check_overrides(cls, base, overrides)
    kwargs = {**base.kwargs, **overrides}
    changed = tuple(sorted(set(base.overrides) | {k for k in overrides}))
    resolved = base.replace(kwargs=kwargs, overrides=changed)
    from metabench.data.cache import compilation_cache_from_env

    compilation_cache_from_env()  # opt-in: $METABENCH_COMPILE_CACHE=DIR
    env = cls(spec=resolved, **kwargs)
    return env


def pprint_registry(kind: str | None = None, *, file: Any = None) -> None:
    """Print every registered id, grouped by family, with its one-line description."""
    import sys

    out = file or sys.stdout
    rows = [s for s in registry.values() if kind is None or s.kind == kind]
    families: dict[str, list[EnvSpec]] = {}
    for s in rows:
        family = s.entry_point.rpartition(":")[0].rpartition(".")[2] if isinstance(s.entry_point, str) else "custom"
        families.setdefault(family, []).append(s)
    for family in sorted(families):
        print(f"===== {family} =====", file=out)
        for s in sorted(families[family], key=lambda s: s.id):
            print(f"  {s.id:<36} {s.kind:<15} {s.description}", file=out)
