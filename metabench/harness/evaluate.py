"""Evaluation on a split's frozen tasks: ``learner.eval_curve`` vmapped over tasks.

Every learner sees the same tasks (``env.eval_tasks(split)``) and the same per-task keys
(``eval_key(env, split)``, derived from the env's ``eval_seed`` only), so results are
comparable across learners and seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from metabench.env import split_salt
from metabench.errors import ConfigError

#: Salt separating the adaptation keys from the task-sampling keys of the eval sets.
_ADAPT_SALT = 0x61646170  # "adap"


def eval_key(env: Any, split: str) -> jax.Array:
    """The fixed key whose splits are the per-task adaptation keys of ``split``."""
    base = jax.random.fold_in(jax.random.key(int(env.spec.eval_seed)), _ADAPT_SALT)
    return jax.random.fold_in(base, split_salt(split))


def _per_task(curve: Callable[..., Any]) -> Callable[..., Any]:
    """``(state, tasks, keys) -> float32[N, S]`` by one ``curve(state, task, key)`` call per task."""

    def run(state: Any, tasks: Any, keys: Any) -> np.ndarray:
        n = int(keys.shape[0])
        rows = [curve(state, jax.tree_util.tree_map(lambda x, i=i: x[i], tasks), keys[i]) for i in range(n)]
        return np.stack([np.asarray(r) for r in rows])

    return run


class Evaluator:
    """Runs ``learner.eval_curve`` over frozen eval tasks in jitted, vmapped batches.

    A learner with ``jittable = False`` (host-simulated envs) provides
    ``eval_curves(state, tasks, keys) -> float32[N, S]`` for a batch instead; one with a
    ``batched_eval_curves(state, tasks, keys)`` (same values as vmapping ``eval_curve``, its
    own batching: transfer learners) is jitted as it is; one with ``eval_per_task = True``
    is evaluated one task per jitted call (same values).

    Shared features: where ``learner.shares_example_features`` is true (its test-time
    features are a function of each image alone: a frozen backbone in eval mode) and the env
    gives its frozen tasks as example indices (``eval_task_examples`` / ``example_images``,
    ``ClassificationEnv``), ``curves`` embeds every example the requested tasks show once
    (``learner.example_features``, in jitted chunks of ``feature_chunk`` images) and runs
    ``learner.curves_from_features`` on the gathered features: the same values as
    ``batched_eval_curves`` (tested), without re-embedding an image for every task that
    shows it (600 omniglot-lite test tasks: 48,000 images of 5,360 examples).
    ``curves_of`` (tasks given as images) takes the learner's ordinary path.
    """

    #: images per jitted ``example_features`` call (XLA:CPU's Conv-4 is fastest per image near 100)
    feature_chunk = 128

    def __init__(self, learner: Any, env: Any, batch_size: int = 50):
        self.learner = learner
        self.env = env
        self.batch_size = batch_size
        if not getattr(learner, "jittable", True):  # host-simulated envs (MuJoCo): the learner batches (and jits) itself
            self._fn: Callable[..., Any] = learner.eval_curves
        elif callable(getattr(learner, "batched_eval_curves", None)):  # the learner batches its tasks itself
            self._fn = jax.jit(learner.batched_eval_curves)
        elif getattr(learner, "eval_per_task", False):
            self._fn = _per_task(jax.jit(learner.eval_curve))
        else:
            self._fn = jax.jit(jax.vmap(learner.eval_curve, in_axes=(None, 0, 0)))
        self._shared = (bool(getattr(learner, "shares_example_features", False))
                        and callable(getattr(learner, "curves_from_features", None))
                        and callable(getattr(env, "eval_task_examples", None)))
        if self._shared:
            self._embed = jax.jit(learner.example_features)
            self._from_features = jax.jit(learner.curves_from_features)

    def curves(self, state: Any, split: str = "test", n_tasks: int | None = None) -> np.ndarray:
        """Per-task curves ``float32[n_tasks, S]`` on the first ``n_tasks`` frozen tasks of ``split``."""
        total = self.env.num_eval_tasks
        n = total if n_tasks is None else n_tasks
        if not 0 < n <= total:
            raise ConfigError(f"{self.env.spec.id}: cannot evaluate on {n} tasks; the {split} set has {total}")
        keys = jax.random.split(eval_key(self.env, split), total)[:n]
        if self._shared:
            return self._shared_curves(state, split, keys)
        return self._in_batches(state, keys, lambda start, stop: self.env.eval_tasks(split, start, stop))

    def _shared_curves(self, state: Any, split: str, keys: jax.Array) -> np.ndarray:
        """``curves`` by features embedded once per example (class docstring)."""
        n = int(keys.shape[0])
        step = self.batch_size  # the shapes of the other batches: no compile per n
        ids = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *[
            jax.device_get(self.env.eval_task_examples(split, a, min(a + step, n))) for a in range(0, n, step)])
        (s_ids, _), (q_ids, _) = ids.support, ids.query
        used, inverse = np.unique(np.concatenate([np.ravel(s_ids), np.ravel(q_ids)]), return_inverse=True)
        chunk = self.feature_chunk
        parts = []
        for start in range(0, len(used), chunk):
            idx = used[start : start + chunk]
            pad = np.concatenate([idx, np.full(chunk - len(idx), idx[0], idx.dtype)])  # one compiled shape
            parts.append(self._embed(state, self.env.example_images(split, pad))[: len(idx)])
        feats = jax.numpy.concatenate(parts, axis=0)
        s_pos = inverse[: np.size(s_ids)].reshape(np.shape(s_ids)).astype(np.int32)
        q_pos = inverse[np.size(s_ids) :].reshape(np.shape(q_ids)).astype(np.int32)

        def tasks_of(start: int, stop: int) -> Any:  # gathered outside the jit: its shapes do not follow len(used)
            return ids._replace(support=(jax.numpy.take(feats, s_pos[start:stop], axis=0), ids.support[1][start:stop]),
                                query=(jax.numpy.take(feats, q_pos[start:stop], axis=0), ids.query[1][start:stop]))

        return self._in_batches(state, keys, tasks_of, fn=self._from_features)

    def curves_of(self, state: Any, tasks: Any, keys: jax.Array) -> np.ndarray:
        """Per-task curves ``float32[N, S]`` on given ``tasks`` (batched, leading axis ``N``) with ``keys[N]``.

        For tasks outside the frozen sets (a larger pool, another paper's test tasks); the
        same batches and code path as ``curves``.
        """
        return self._in_batches(state, keys, lambda start, stop: jax.tree_util.tree_map(lambda x: x[start:stop], tasks))

    def _in_batches(self, state: Any, keys: jax.Array, tasks_of: Callable[[int, int], Any],
                    fn: Callable[..., Any] | None = None) -> np.ndarray:
        fn = self._fn if fn is None else fn
        out = []
        for start in range(0, int(keys.shape[0]), self.batch_size):
            stop = min(start + self.batch_size, int(keys.shape[0]))
            out.append(np.asarray(jax.device_get(fn(state, tasks_of(start, stop), keys[start:stop]))))
        curves = np.concatenate(out, axis=0)
        if curves.ndim != 2:
            raise ConfigError(
                f"{type(self.learner).__name__}.eval_curve must return float32[S] per task; "
                f"got per-task shape {curves.shape[1:]}"
            )
        return curves
