"""Conformance checks that ship with the library: ``check_meta_env(env)``.

Users run them on their own envs the way they run gymnasium's ``check_env``; the test
suite runs them on every registered id. A failed check raises ``AssertionError`` with a
message naming the check, the env id and what differed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metabench.tasks import SupervisedTask


def task_digest(task: Any) -> str:
    """sha256 over every leaf of a task pytree (dtype, shape and bytes), in tree order."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(task):
        arr = np.asarray(leaf)
        h.update(str((arr.dtype.str, arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _fail(env: Any, check: str, detail: str) -> None:
    raise AssertionError(f"check_meta_env[{env.spec.id}] {check}: {detail}")


def _trees_equal(a: Any, b: Any) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.asarray(x).shape == np.asarray(y).shape and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb)
    )


def check_determinism(env: Any, split: str) -> None:
    k = jax.random.key(1234)
    t1, t2 = env.sample_task(k, split), env.sample_task(k, split)
    if not _trees_equal(t1, t2):
        _fail(env, "determinism", f"two calls with the same key gave different {split} tasks")
    # Key dependence: some of 8 other keys must give a different task (a finite
    # distribution, e.g. two directions, may repeat a task for any single pair of keys).
    others = [env.sample_task(jax.random.key(4321 + i), split) for i in range(8)]
    if all(_trees_equal(t1, t) for t in others):
        _fail(env, "key dependence", f"9 different keys all gave the identical {split} task")


def check_shapes(env: Any, split: str) -> None:
    task = env.sample_task(jax.random.key(7), split)
    expected = env.task_shapes(split)
    got = jax.tree_util.tree_map(lambda x: (tuple(x.shape), str(x.dtype)), task)
    want = jax.tree_util.tree_map(lambda s: (tuple(s.shape), str(s.dtype)), expected)
    if got != want:
        _fail(env, "shapes", f"sampled task {got} differs from task_shapes {want}")
    for leaf in jax.tree_util.tree_leaves(task):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(leaf))):
            _fail(env, "finite", f"a {split} task has NaN or inf values")


def check_supervised(env: Any, split: str) -> None:
    task = env.sample_task(jax.random.key(11), split)
    if not isinstance(task, SupervisedTask):
        _fail(env, "task type", f"expected SupervisedTask, got {type(task).__name__}")
    (sx, sy), (qx, qy) = task.support, task.query
    if sx.shape[0] != sy.shape[0] or qx.shape[0] != qy.shape[0]:
        _fail(env, "shapes", "x and y have different numbers of rows")
    if sx.shape[1:] != qx.shape[1:]:
        _fail(env, "shapes", f"support inputs {sx.shape[1:]} and query inputs {qx.shape[1:]} differ")
    if env.spec.kind != "classification":
        return
    n, k, q = env.ways, env.shots, env.queries
    if sy.dtype != jnp.int32 or qy.dtype != jnp.int32:
        _fail(env, "dtypes", f"labels must be int32, got {sy.dtype}/{qy.dtype}")
    if sx.dtype != jnp.float32:
        _fail(env, "dtypes", f"images must be float32, got {sx.dtype}")
    if float(sx.min()) < 0.0 or float(sx.max()) > 1.0:
        _fail(env, "range", "images must lie in [0, 1]")
    for name, y, per in (("support", sy, k), ("query", qy, q)):
        counts = np.bincount(np.asarray(y), minlength=n)
        if y.shape != (n * per,) or counts.shape != (n,) or not np.all(counts == per):
            _fail(env, "labels", f"{name} labels must be 0..{n - 1}, {per} each; got counts {counts.tolist()}")
    # The label -> class assignment is random per task: over a few tasks, label 0 must not
    # always show the same images.
    firsts = {task_digest(env.sample_task(jax.random.key(s), split).support[0][0]) for s in range(6)}
    if len(firsts) == 1:
        _fail(env, "label remap", "label 0 showed the same image in 6 different tasks")


def check_split_disjoint(env: Any) -> None:
    names = getattr(env, "class_names", None)
    if names is None:
        return
    seen: dict[str, str] = {}
    for split in env.splits:
        for c in names(split):
            if c in seen and seen[c] != split:
                _fail(env, "split integrity", f"class {c!r} is in both {seen[c]!r} and {split!r}")
            seen[c] = split


def check_jit_vmap(env: Any, split: str) -> None:
    key = jax.random.key(3)
    eager = env.sample_task(key, split)
    jitted = jax.jit(env.sample_task, static_argnames="split")(key, split=split)
    if not _trees_equal(eager, jitted):
        _fail(env, "jit", "jit(sample_task) differs from the eager result")
    keys = jax.random.split(key, 3)
    batch = jax.vmap(lambda k: env.sample_task(k, split))(keys)
    second = jax.tree_util.tree_map(lambda x: x[1], batch)
    if not _trees_equal(second, env.sample_task(keys[1], split)):
        _fail(env, "vmap", "vmap(sample_task) row 1 differs from sample_task(keys[1])")
    many = env.sample_tasks(key, 3, split)
    if not _trees_equal(many, batch):
        _fail(env, "sample_tasks", "sample_tasks(key, n) differs from vmap over split(key, n)")


def check_eval_set(env: Any, splits: Sequence[str], hashes: bool = True) -> None:
    """Evaluation sets: batching-independent, consistent with ``eval_keys``, and (``hashes``) distinct per split."""
    for split in splits:
        # The set must not depend on how it is batched (two differently compiled programs).
        head = env.eval_tasks(split, 0, 8)
        chunk = next(env.iter_eval_tasks(split))
        if task_digest(jax.tree_util.tree_map(lambda x: x[:8], chunk)) != task_digest(head):
            _fail(env, "eval set", f"the frozen {split} evaluation set depends on the batch it is computed in")
        first = jax.tree_util.tree_map(lambda x: x[0], head)
        if not _trees_equal(first, env.sample_task(env.eval_keys(split)[0], split)):
            _fail(env, "eval set", f"eval_tasks({split!r})[0] is not sample_task(eval_keys[0])")
        if env.eval_keys(split).shape != (env.num_eval_tasks,):
            _fail(env, "eval set", f"{split} has {env.eval_keys(split).shape[0]} eval keys, spec says {env.num_eval_tasks}")
    if not hashes:
        return
    digests = {s: env.eval_hash(s) for s in splits}
    if len(set(digests.values())) != len(digests):
        _fail(env, "eval set", f"two splits share an evaluation set: {digests}")


def check_examples(env: Any, split: str | None = None, n: int = 8) -> None:
    """The non-episodic view (contract 1.1) of a classification env, on ``split`` (default: all).

    ``num_classes`` / ``num_examples`` are consistent; batches have the env's image shape
    (float32 in [0, 1]) and int32 global labels in ``0..num_classes - 1``; same key, same
    batch, other keys other batches; the jitted ``example_sampler`` equals
    ``sample_examples``, and its epoch-level path (``from_order`` of ``epoch_order``, where it has
    one) equals it; in epoch order no example repeats within the first two batches;
    and (for ``ClassificationEnv`` subclasses) an epoch's labels count every class of the
    training split exactly as often as the class has images.
    """
    for s in ([split] if split is not None else list(env.splits)):
        n_cls, n_ex = env.num_classes(s), env.num_examples(s)
        if n_cls < env.ways or n_ex < n_cls:
            _fail(env, "examples", f"split {s!r}: {n_cls} classes and {n_ex} examples")
        k = jax.random.key(21)
        a, b = env.sample_examples(k, n, s), env.sample_examples(k, n, s)
        if not _trees_equal(a, b):
            _fail(env, "examples determinism", f"two calls with the same key gave different {s} batches")
        x, y = a
        if tuple(x.shape) != (n, *env.image_shape) or x.dtype != jnp.float32 or y.shape != (n,) or y.dtype != jnp.int32:
            _fail(env, "examples shapes", f"got x {x.shape} {x.dtype}, y {y.shape} {y.dtype}")
        if float(x.min()) < 0.0 or float(x.max()) > 1.0:
            _fail(env, "examples range", "images must lie in [0, 1]")
        if int(y.min()) < 0 or int(y.max()) >= n_cls:
            _fail(env, "examples labels", f"global labels must lie in 0..{n_cls - 1}, got {np.asarray(y).tolist()}")
        others = [env.sample_examples(jax.random.key(22 + i), n, s) for i in range(3)]
        if all(_trees_equal(a, o) for o in others):
            _fail(env, "examples key dependence", f"4 keys gave the identical {s} batch")
        sample, data = env.example_sampler(n, s, epochs=True)
        jitted = jax.jit(sample)(data, k, np.int32(1))
        if not _trees_equal(jitted, env.sample_examples(k, n, s, step=1)):
            _fail(env, "examples jit", "jit(example_sampler) differs from sample_examples(step=1)")
        per_epoch = env.steps_per_epoch(n, s)
        if hasattr(sample, "from_order"):  # the epoch-level path (EpochSampler): the same batches
            for t in sorted({1, per_epoch}):
                order = sample.epoch_order(k, t // per_epoch)
                if not _trees_equal(jax.jit(sample.from_order)(data, order, k, np.int32(t)), jax.jit(sample)(data, k, np.int32(t))):
                    _fail(env, "examples epoch order", f"from_order(epoch_order(key, epoch)) differs from the sampler at step {t}")
        if per_epoch >= 2:
            first = [task_digest(jax.tree_util.tree_map(lambda v, i=i: v[i], env.sample_examples(k, n, s, step=t)))
                     for t in (0, 1) for i in range(n)]
            # distinct examples (their pixels may coincide only if the data holds duplicates)
            if len(set(first)) < len(first) - 1:
                _fail(env, "examples epochs", "an example repeats within the first two batches of an epoch")
    # a whole epoch of labels (indices only, no images): each class as often as it has images
    s = "train" if "train" in env.splits else env.splits[0]
    row, cls = env._example_index(s) if hasattr(env, "_example_index") else (None, None)
    if cls is not None and hasattr(env, "tables"):
        counts = np.bincount(np.asarray(cls), minlength=env.num_classes(s))
        want = np.asarray(env._counts)[env.tables[s].base]
        if not np.array_equal(counts, want):
            _fail(env, "examples coverage", f"split {s!r}: examples per class {counts[:8]}... != images per class {want[:8]}...")


_CHILD = r"""
import json, sys, jax, metabench
from metabench.spec import EnvSpec
from metabench.testing import task_digest
spec = EnvSpec.from_json(sys.argv[1])
env = metabench.make(spec)
print(json.dumps({s: task_digest(env.sample_task(jax.random.key(99), s)) for s in env.splits}))
"""


def check_other_process(env: Any) -> None:
    """The same key gives the same task, bit for bit, in a fresh Python process."""
    base = env.spec.replace(kwargs=dict(env.spec.kwargs), data_hash=None)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, base.to_json()],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")},
        timeout=300,
    )
    if out.returncode != 0:
        _fail(env, "second process", f"child failed:\n{out.stderr[-2000:]}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    ours = {s: task_digest(env.sample_task(jax.random.key(99), s)) for s in env.splits}
    if theirs != ours:
        _fail(env, "second process", f"tasks differ across processes: {ours} vs {theirs}")


def check_meta_env(env: Any, *, second_process: bool = True, quick: bool = False) -> dict[str, str]:
    """Run every conformance check on ``env``; returns ``{split: eval_hash}`` on success.

    Checks: determinism and key dependence, shapes/dtypes vs ``task_shapes``, finiteness,
    label range and counts, random label remapping, split disjointness (classification),
    jit and vmap, ``sample_tasks`` batching, stable and distinct frozen evaluation sets,
    the non-episodic view of classification envs (``check_examples``), and
    (``second_process=True``) bit-identical tasks in a fresh process.
    RL envs are checked by ``metabench.testing_rl.check_rl_env`` in addition.

    ``quick=True`` (for a further id of a family whose first id had the full check: same
    code, other sizes) skips the jit/vmap check, checks the frozen evaluation set of the
    first evaluation split only and returns ``{}`` instead of hashing every evaluation
    set (hashing is most of the time on image envs: 600 tasks of float images per split).
    """
    for split in env.splits:
        check_determinism(env, split)
        check_shapes(env, split)
        if env.spec.kind in ("classification", "regression"):
            check_supervised(env, split)
    # Splits share one sampler and differ only in its tables: jit/vmap on one split
    # covers the code path (each check compiles three programs).
    if not quick:
        check_jit_vmap(env, env.splits[0])
    check_split_disjoint(env)
    eval_splits = [s for s in env.splits if s in ("val", "test")] or list(env.splits)
    if quick:
        check_eval_set(env, eval_splits[:1], hashes=False)
    else:
        check_eval_set(env, eval_splits)
    if env.spec.kind == "classification" and hasattr(env, "sample_examples"):
        check_examples(env, env.splits[0] if quick else None)
    if env.spec.kind == "rl":
        from metabench.testing_rl import check_rl_env

        check_rl_env(env)
    if second_process:
        check_other_process(env)
    return {} if quick else {s: env.eval_hash(s) for s in eval_splits}
