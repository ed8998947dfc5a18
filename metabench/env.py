"""The MetaEnv contract (``docs/contract.md``, contract version ``CONTRACT_VERSION``).

A MetaEnv is a task distribution with splits. Sampling is a pure function of an
explicit ``jax.random`` key: ``sample_task(key, split)`` is jit-able (``split`` static)
and vmap-able over keys; ``sample_tasks(key, n, split)`` returns ``n`` tasks with a
leading task axis. Every split has a frozen evaluation set derived from the spec
(``eval_tasks``), the same for every learner, with a content hash (``eval_hash``).
"""

from __future__ import annotations

import abc
import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import jax
import numpy as np

from metabench.errors import ConfigError
from metabench.registry import did_you_mean
from metabench.spec import EnvSpec
from metabench.tasks import PRNGKey, Task

#: Version of the MetaEnv contract; bumped on any change a learner could observe.
CONTRACT_VERSION = "1.1"

#: Stable index of each split name in the derivation of evaluation keys.
_SPLIT_SALT = {"train": 0, "val": 1, "test": 2}


def split_salt(split: str) -> int:
    if split in _SPLIT_SALT:
        return _SPLIT_SALT[split]
    return int.from_bytes(hashlib.sha256(split.encode()).digest()[:4], "little") & 0x7FFFFFFF


class MetaEnv(abc.ABC):
    """Base class of every task distribution.

    Subclasses set ``kind`` and implement ``_sample(key, split)``; everything else
    (validation of split names, batching, jit caching, frozen evaluation sets and their
    hashes) lives here.
    """

    kind: ClassVar[str]
    splits: tuple[str, ...] = ("train", "val", "test")

    def __init__(self, spec: EnvSpec):
        self.spec = spec
        self._jitted: dict[tuple[str, str], Callable[..., Any]] = {}
        self._hashes: dict[str, str] = {}
        # One compiled sampler per split, shared by eager calls and by callers that trace it.
        # The env's arrays (``_data()``) are jit *arguments*, never constants baked into the
        # program: a closed-over 1 GB image pool would make every compile take minutes.
        self._jit_sample = jax.jit(lambda data, key, split: self._sample_from(data, key, split), static_argnums=2)

    # -- the contract -------------------------------------------------------------
    @abc.abstractmethod
    def _sample(self, key: PRNGKey, split: str) -> Task:
        """Draw one task of ``split`` from ``key`` (traced; ``split`` is static)."""

    def _data(self) -> Any:
        """Arrays the sampler reads (an image pool); passed to the compiled sampler as arguments."""
        return None

    def _sample_from(self, data: Any, key: PRNGKey, split: str) -> Task:
        """``_sample`` reading its arrays from ``data`` (override with ``_data`` for large arrays)."""
        return self._sample(key, split)

    def sample_task(self, key: PRNGKey, split: str = "train") -> Task:
        """One task; a pure function of ``key`` and ``split``. jit with ``static_argnames='split'``."""
        self.check_split(split)
        return self._jit_sample(self._data(), key, split)

    def sample_tasks(self, key: PRNGKey, n: int, split: str = "train") -> Task:
        """``n`` tasks with a leading task axis: ``vmap(sample_task)`` over ``split(key, n)``."""
        self.check_split(split)
        if not isinstance(n, int) or n <= 0:
            raise ConfigError(f"sample_tasks: n must be a positive int, got {n!r}")
        data = self._data()
        return jax.vmap(lambda k: self._jit_sample(data, k, split))(jax.random.split(key, n))

    def batch_sampler(self, n: int, split: str = "train") -> tuple[Callable[[Any, PRNGKey], Task], Any]:
        """``(sample, data)``: a pure ``sample(data, key) -> sample_tasks(key, n, split)`` and its arrays.

        For callers that jit their own step (the harness fuses sampling into the
        meta-train step): pass ``data`` as a jit argument, so an image pool is not
        compiled into the program as a constant.
        """
        self.check_split(split)

        def sample(data: Any, key: PRNGKey) -> Task:
            return jax.vmap(lambda k: self._sample_from(data, k, split))(jax.random.split(key, n))

        return sample, self._data()

    def jit_sample_tasks(self, n: int, split: str = "train") -> Callable[[PRNGKey], Task]:
        """A cached, jitted ``key -> sample_tasks(key, n, split)``."""
        cache_key = ("batch", f"{split}:{n}")
        if cache_key not in self._jitted:
            self._jitted[cache_key] = jax.jit(self.batch_sampler(n, split)[0])
        fn = self._jitted[cache_key]
        return lambda key: fn(self._data(), key)

    # -- frozen evaluation sets ---------------------------------------------------
    @property
    def num_eval_tasks(self) -> int:
        return int(self.spec.eval_tasks)  # type: ignore[arg-type]

    def eval_keys(self, split: str = "test") -> jax.Array:
        """The ``num_eval_tasks`` keys of the frozen evaluation set of ``split``."""
        self.check_split(split)
        base = jax.random.fold_in(jax.random.key(int(self.spec.eval_seed)), split_salt(split))  # type: ignore[arg-type]
        return jax.random.split(base, self.num_eval_tasks)

    def eval_tasks(self, split: str = "test", start: int = 0, stop: int | None = None) -> Task:
        """Evaluation tasks ``start:stop`` of ``split`` (all by default), batched."""
        keys = self.eval_keys(split)[start:stop]
        if keys.shape[0] == 0:
            raise ConfigError(f"eval_tasks: empty range {start}:{stop} of {self.num_eval_tasks} tasks")
        fn = self._jitted.get(("eval", split))
        if fn is None:
            fn = jax.jit(jax.vmap(lambda data, k: self._sample_from(data, k, split), in_axes=(None, 0)))
            self._jitted[("eval", split)] = fn
        return fn(self._data(), keys)

    def iter_eval_tasks(self, split: str = "test", batch_size: int = 50) -> Iterator[Task]:
        """The frozen evaluation set in batches of at most ``batch_size`` tasks."""
        for start in range(0, self.num_eval_tasks, batch_size):
            yield self.eval_tasks(split, start, min(start + batch_size, self.num_eval_tasks))

    def eval_hash(self, split: str = "test") -> str:
        """sha256 of the frozen evaluation set of ``split``: every array, in order, as bytes."""
        if split not in self._hashes:
            h = hashlib.sha256()
            for batch in self.iter_eval_tasks(split):
                for leaf in jax.tree_util.tree_leaves(batch):
                    arr = np.asarray(leaf)
                    h.update(str((arr.dtype.str, arr.shape)).encode())
                    h.update(np.ascontiguousarray(arr).tobytes())
            self._hashes[split] = h.hexdigest()
        return self._hashes[split]

    # -- helpers ------------------------------------------------------------------
    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ConfigError(
                f"{self.spec.id}: unknown split {split!r}.{did_you_mean(split, list(self.splits))} "
                f"Splits of this env: {', '.join(self.splits)}."
            )

    def task_shapes(self, split: str = "train") -> Any:
        """Shapes and dtypes of one task (``jax.ShapeDtypeStruct`` pytree), without sampling."""
        return jax.eval_shape(functools.partial(self._sample, split=split), jax.random.key(0))

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: spec, contract version, task shapes and split sizes."""
        shapes = _jsonable(jax.tree_util.tree_map(lambda s: [list(s.shape), str(s.dtype)], self.task_shapes()))
        return {
            "spec": self.spec.to_dict(),
            "contract_version": CONTRACT_VERSION,
            "task_shapes": shapes,
            "splits": list(self.splits),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.id}>"


def _jsonable(tree: Any) -> Any:
    """NamedTuples and dataclasses become dicts, tuples lists (for ``describe``)."""
    if hasattr(tree, "_asdict"):
        return {k: _jsonable(v) for k, v in tree._asdict().items()}
    if isinstance(tree, dict):
        return {k: _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(v) for v in tree]
    return tree


def positive_int(name: str, value: Any, env_id: str) -> int:
    """Validate a size argument (ways, shots, queries)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{env_id}: {name} must be a positive integer, got {value!r}")
    return int(value)
