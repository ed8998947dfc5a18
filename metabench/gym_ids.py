"""metabench ids in gymnasium's registry: ``gymnasium.make("metabench/point-nav-v0")``.

Every metabench id ``name-vN`` is registered as ``metabench/name-vN``: RL ids build a
``metabench.gym_env.FamilyEnv`` (``gymnasium.make``) or a vector env
(``gymnasium.make_vec``: ``metabench.gym_vector``); the ids of supervised envs are
registered too, with an entry point that raises a ``ConfigError`` saying why, so that
``gymnasium.make`` on one gives a clear error rather than "doesn't exist".

Lazy: ``import metabench`` does not import gymnasium (nor MuJoCo, nor any env module).
When gymnasium is already imported, the ids are registered at once; otherwise a one-shot
import hook registers them right after ``import gymnasium`` finishes, whichever of the
two is imported first. Ids registered later with ``metabench.register`` follow
(``on_register``). Entry points are strings: nothing is built until ``make``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from metabench.spec import EnvSpec

NAMESPACE = "metabench"
ENV_ENTRY_POINT = "metabench.gym_env:FamilyEnv"
VECTOR_ENTRY_POINT = "metabench.gym_vector:make_vector_env"
NOT_RL_ENTRY_POINT = "metabench.gym_env:not_rl"


def gym_id(spec: EnvSpec) -> str:
    """``metabench/<id>``: the gymnasium id of a metabench spec."""
    return f"{NAMESPACE}/{spec.id}"


def register_spec(spec: EnvSpec) -> None:
    """Register one metabench spec in gymnasium's registry (gymnasium must be imported)."""
    import gymnasium

    gid = gym_id(spec)
    if gid in gymnasium.registry:
        return
    if spec.kind == "rl":
        gymnasium.register(gid, entry_point=ENV_ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                           kwargs={"env_id": spec.id})
    else:
        gymnasium.register(gid, entry_point=NOT_RL_ENTRY_POINT, kwargs={"env_id": spec.id, "kind": spec.kind})


def register_all() -> None:
    """Register every metabench id (called once gymnasium is imported)."""
    from metabench.registry import registry

    for spec in list(registry.values()):
        register_spec(spec)


def on_register(spec: EnvSpec) -> None:
    """``metabench.register`` hook: mirror a new id when gymnasium is already imported."""
    if "gymnasium.envs.registration" in sys.modules and not _hook_pending():
        register_spec(spec)


class _RegisteringLoader(importlib.abc.Loader):
    """Wraps gymnasium's loader: runs it, then registers metabench's ids."""

    def __init__(self, inner: importlib.abc.Loader):
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        register_all()

    def __getattr__(self, name: str) -> Any:  # resource readers, get_filename, is_package ...
        return getattr(self._inner, name)


class _GymnasiumHook(importlib.abc.MetaPathFinder):
    """One-shot finder: hands out gymnasium's own spec with a registering loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("gymnasium")
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def _hook_pending() -> bool:
    return any(isinstance(f, _GymnasiumHook) for f in sys.meta_path)


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _GymnasiumHook)]


def install() -> None:
    """Register now when gymnasium is imported, else when it will be (called by ``import metabench``)."""
    if "gymnasium" in sys.modules:
        register_all()
    elif not _hook_pending():
        sys.meta_path.insert(0, _GymnasiumHook())
