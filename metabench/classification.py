"""Few-shot classification over an in-memory image pool: the sampler every image env shares.

Images are held once, as ``uint8[N, H, W, C]`` grouped by *base class* (a character, a
wnid, a bird species). A split is a table of classes, each a base class plus an optional
rotation by ``k * 90`` degrees (Omniglot's rotation classes). Sampling a task is one
jitted gather: choose ``ways`` classes without replacement (their order is the random
label assignment), choose ``shots + queries`` distinct images of each, rotate, scale to
``[0, 1]`` float32.

The non-episodic view (contract 1.1, ``docs/contract.md``): every example of a split's
classes with its *global* label (the class's index in the split table), for transfer
learners that pre-train a standard classifier (Chen et al. 2019). ``sample_examples(key, n,
split)`` draws ``n`` examples i.i.d. uniformly; with ``step=`` it returns batch ``step`` of
a sequence of epochs (each a fresh permutation of all examples, drawn from ``key`` and the
epoch index, the last partial batch dropped); ``example_sampler`` gives the same as a pure
``sample(data, key, step)`` for callers that jit their own step (with ``epochs=True`` an
``EpochSampler``, which also splits the work at the epoch: the order once per epoch, a slice
and a gather per step). ``augment=True`` applies Chen et al.'s crop / jitter / flip
(``metabench.augment``) to RGB images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabench.env import MetaEnv, positive_int
from metabench.errors import ConfigError
from metabench.spec import EnvSpec
from metabench.tasks import PRNGKey, SupervisedTask


class Examples(NamedTuple):
    """A batch of the non-episodic view: ``x`` float32[n, H, W, C] in [0, 1], ``y`` int32[n]
    global labels in ``0..num_classes(split) - 1`` (the class's index in the split table)."""

    x: jax.Array
    y: jax.Array


#: Salt of the augmentation keys (independent of the example choice).
_AUG_SALT = 0x61756720  # "aug "


@dataclasses.dataclass(frozen=True)
class EpochSampler:
    """The epoch sampler of ``example_sampler(epochs=True)``: ``sampler(data, key, step) -> Examples``.

    Batch ``step`` is entries ``(step % steps_per_epoch) * n`` onward of epoch ``step //
    steps_per_epoch``'s order ``permutation(fold_in(key, epoch))``. Called, it computes only those
    ``n`` entries (``permutation_slice``); a caller that steps through epochs computes the order
    once per epoch with ``epoch_order(key, epoch)`` and passes it to ``from_order(data, order, key,
    step)``, which only slices and gathers: the same batches, bit for bit.
    """

    n: int
    total: int
    steps_per_epoch: int
    gather: Callable[[Any, jax.Array, PRNGKey], Examples]  # (data, idx int32[n], augmentation key)

    def __call__(self, data: Any, key: PRNGKey, step: Any) -> Examples:
        step = jnp.asarray(step, jnp.int32)
        epoch_key = jax.random.fold_in(key, step // self.steps_per_epoch)
        idx = permutation_slice(epoch_key, self.total, (step % self.steps_per_epoch) * self.n, self.n)
        return self.gather(data, idx, self._aug_key(key, step))

    def epoch_order(self, key: PRNGKey, epoch: Any) -> jax.Array:
        """int32[total]: epoch ``epoch``'s order of all examples (pure, jit-able)."""
        return jax.random.permutation(jax.random.fold_in(key, epoch), self.total).astype(jnp.int32)

    def from_order(self, data: Any, order: jax.Array, key: PRNGKey, step: Any) -> Examples:
        """``self(data, key, step)`` given ``order = epoch_order(key, step // steps_per_epoch)``."""
        step = jnp.asarray(step, jnp.int32)
        idx = jax.lax.dynamic_slice(order, ((step % self.steps_per_epoch) * self.n,), (self.n,))
        return self.gather(data, idx, self._aug_key(key, step))

    @staticmethod
    def _aug_key(key: PRNGKey, step: jax.Array) -> PRNGKey:
        return jax.random.fold_in(jax.random.fold_in(key, _AUG_SALT), step)


class ImagePool(NamedTuple):
    """All images of a dataset, grouped by base class.

    images:  uint8[N, H, W, C], base class ``b`` at rows ``offsets[b] : offsets[b] + counts[b]``.
    offsets: int32[B]; counts: int32[B]; names: the ``B`` base-class names.
    """

    images: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def from_groups(cls, groups: Sequence[np.ndarray], names: Sequence[str]) -> ImagePool:
        if len(groups) != len(names):
            raise ValueError("one name per group")
        counts = np.array([len(g) for g in groups], dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        return cls(np.concatenate(groups, axis=0), offsets, counts, tuple(names))


class SplitTable(NamedTuple):
    """The classes of one split: ``base[i]`` rotated by ``rot[i] * 90`` degrees."""

    base: np.ndarray  # int32[n_classes]
    rot: np.ndarray  # int32[n_classes], 0..3

    @classmethod
    def of(cls, base: Sequence[int] | np.ndarray, rotations: Sequence[int] = (0,)) -> SplitTable:
        b = np.repeat(np.asarray(base, dtype=np.int32), len(rotations))
        r = np.tile(np.asarray(rotations, dtype=np.int32), len(base))
        return cls(b, r)


class ClassificationEnv(MetaEnv):
    """Base of N-way K-shot image classification envs.

    Subclasses implement ``_load() -> (ImagePool, {split: SplitTable}, data_hash)``.
    """

    kind: ClassVar[str] = "classification"

    def __init__(self, spec: EnvSpec, *, ways: int, shots: int, queries: int = 15):
        super().__init__(spec)
        self.ways = positive_int("ways", ways, spec.id)
        self.shots = positive_int("shots", shots, spec.id)
        self.queries = positive_int("queries", queries, spec.id)
        pool, tables, data_hash = self._load()
        self._install(pool, tables)
        self.spec = spec.replace(data_hash=data_hash)

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        raise NotImplementedError

    def _install(self, pool: ImagePool, tables: Mapping[str, SplitTable]) -> None:
        self.splits = tuple(tables)
        self.pool_names = pool.names
        self.tables = dict(tables)
        per_class = self.shots + self.queries
        for split, t in tables.items():
            if len(t.base) < self.ways:
                raise ConfigError(
                    f"{self.spec.id}: ways={self.ways} but split {split!r} has only {len(t.base)} "
                    f"classes; use ways <= {len(t.base)}"
                )
            fewest = int(pool.counts[t.base].min())
            if per_class > fewest:
                raise ConfigError(
                    f"{self.spec.id}: shots + queries = {self.shots} + {self.queries} = {per_class} "
                    f"but a class of split {split!r} has only {fewest} images; "
                    f"use shots + queries <= {fewest}"
                )
        if np.any(np.concatenate([t.rot for t in tables.values()]) != 0) and pool.images.shape[1] != pool.images.shape[2]:
            raise ConfigError(f"{self.spec.id}: rotation classes need square images")
        self.image_shape = tuple(int(s) for s in pool.images.shape[1:])
        self._images = device_array(pool.images)
        self._offsets = device_array(pool.offsets)
        self._counts = device_array(pool.counts)
        self._max_count = int(pool.counts.max())
        self._tables = {s: (device_array(t.base), device_array(t.rot)) for s, t in tables.items()}
        self._rotates = {s: bool(np.any(t.rot != 0)) for s, t in tables.items()}

    def num_classes(self, split: str) -> int:
        self.check_split(split)
        return int(len(self.tables[split].base))

    # -- the non-episodic view ----------------------------------------------------------
    def num_examples(self, split: str = "train") -> int:
        """Number of examples of ``split``: every image of every class (rotation classes count apart)."""
        self.check_split(split)
        return int(self._example_index(split)[0].shape[0])

    def _example_index(self, split: str) -> tuple[jax.Array, jax.Array]:
        """``(row int32[E], cls int32[E])``: pool row and split class of every example (cached)."""
        cache = self.__dict__.setdefault("_examples_cache", {})
        if split not in cache:
            t = self.tables[split]
            counts = np.asarray(self._counts)[t.base]
            offsets = np.asarray(self._offsets)[t.base]
            cls = np.repeat(np.arange(len(t.base), dtype=np.int32), counts)
            starts = np.repeat(offsets - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
            row = (starts + np.arange(int(counts.sum()))).astype(np.int32)
            cache[split] = (device_array(row), device_array(cls))
        return cache[split]

    def steps_per_epoch(self, n: int, split: str = "train") -> int:
        """Batches of ``n`` in one epoch over ``split`` (the last partial batch is dropped)."""
        n = positive_int("batch size n", n, self.spec.id)
        total = self.num_examples(split)
        if n > total:
            raise ConfigError(f"{self.spec.id}: batch size {n} exceeds the {total} examples of split {split!r}; use n <= {total}")
        return total // n

    def _check_augment(self, augment: bool) -> None:
        if augment and self.image_shape[-1] != 3:
            raise ConfigError(
                f"{self.spec.id}: augment=True applies Chen et al.'s RGB augmentation (crop, colour jitter, flip) "
                f"to 84x84x3 images; this env's images are {'x'.join(map(str, self.image_shape))} "
                "(grey Omniglot is trained without augmentation, as Chen et al.): set augment=False"
            )

    def example_sampler(
        self, n: int, split: str = "train", *, epochs: bool = False, augment: bool = False
    ) -> tuple[Callable[[Any, PRNGKey, Any], Examples], Any]:
        """``(sample, data)``: a pure ``sample(data, key, step) -> Examples`` of ``n`` examples, and its arrays.

        ``epochs=False``: i.i.d. uniform draws from ``fold_in(key, step)``. ``epochs=True``: an
        ``EpochSampler``, batch ``step % steps_per_epoch`` of epoch ``step // steps_per_epoch``,
        whose order is ``permutation(fold_in(key, epoch))``: every example once per epoch. Pass
        ``data`` as a jit argument (the image pool is not compiled into the program).
        """
        self.check_split(split)
        n = positive_int("batch size n", n, self.spec.id)
        self._check_augment(augment)
        total = self.num_examples(split)
        rotates = self._rotates[split]

        def gather(data: Any, idx: jax.Array, k_aug: PRNGKey) -> Examples:
            x = _gather_examples(data, idx, rotates)
            if augment:
                from metabench.augment import augment_batch

                x = augment_batch(k_aug, x)
            return Examples(x, data["cls"][idx])

        if epochs:
            return EpochSampler(n, total, self.steps_per_epoch(n, split), gather), self._examples_data(split)

        def sample(data: Any, key: PRNGKey, step: Any) -> Examples:
            k_idx, k_aug = jax.random.split(key if step is None else jax.random.fold_in(key, step))
            return gather(data, jax.random.randint(k_idx, (n,), 0, total, dtype=jnp.int32), k_aug)

        return sample, self._examples_data(split)

    def _examples_data(self, split: str) -> dict[str, Any]:
        """The arrays ``_gather_examples`` reads: the image pool, each example's pool row and split
        class, and each split class's rotation."""
        row, cls = self._example_index(split)
        return {"images": self._images, "row": row, "cls": cls, "rot": self._tables[split][1]}

    def sample_examples(
        self, key: PRNGKey, n: int, split: str = "train", *, step: int | None = None, augment: bool = False
    ) -> Examples:
        """``n`` examples of ``split`` with global labels; pure in ``key`` (and ``step``), jitted.

        ``step=None``: i.i.d. uniform draws from ``key``. ``step=t``: batch ``t`` of the epoch
        sequence that ``key`` orders (see ``example_sampler(epochs=True)``).
        """
        epochs = step is not None
        cache_key = ("examples", f"{split}:{n}:{epochs}:{augment}")
        if cache_key not in self._jitted:
            sample, _ = self.example_sampler(n, split, epochs=epochs, augment=augment)
            self._jitted[cache_key] = jax.jit(sample, static_argnums=() if epochs else (2,))
        fn = self._jitted[cache_key]
        _, data = self.example_sampler(n, split, epochs=epochs, augment=augment)
        return fn(data, key, jnp.int32(step) if epochs else None)

    def class_names(self, split: str) -> list[str]:
        """``"base_name/rotDDD"`` for every class of ``split``."""
        t = self.tables[split]
        return [f"{self.pool_names[b]}/rot{90 * r:03d}" for b, r in zip(t.base, t.rot)]

    def _data(self) -> dict[str, Any]:
        return {"images": self._images, "offsets": self._offsets, "counts": self._counts, "tables": self._tables}

    def _sample(self, key: PRNGKey, split: str) -> SupervisedTask:
        return self._sample_from(self._data(), key, split)

    def _choose(self, data: dict[str, Any], key: PRNGKey, split: str) -> tuple[jax.Array, jax.Array, jax.Array]:
        """A task's ``(cls int32[n], base int32[n], pick int32[n, k + q])``: split classes, their base
        classes, and the images' positions within each base class."""
        n, k, q = self.ways, self.shots, self.queries
        base_t, _ = data["tables"][split]
        k_cls, k_img = jax.random.split(key)
        cls = choice_without_replacement(k_cls, base_t.shape[0], n)
        base = base_t[cls]
        counts = data["counts"][base]
        # k + q distinct images per class: the k + q smallest of uniform scores, padded rows masked.
        scores = jax.random.uniform(k_img, (n, self._max_count))
        scores = jnp.where(jnp.arange(self._max_count)[None, :] < counts[:, None], scores, 2.0)
        pick = jnp.argsort(scores, axis=1)[:, : k + q]
        return cls, base, pick

    def _labels(self) -> tuple[jax.Array, jax.Array]:
        labels = jnp.arange(self.ways, dtype=jnp.int32)
        return jnp.repeat(labels, self.shots), jnp.repeat(labels, self.queries)

    def _sample_from(self, data: dict[str, Any], key: PRNGKey, split: str) -> SupervisedTask:
        n, k, q = self.ways, self.shots, self.queries
        _, rot_t = data["tables"][split]
        cls, base, pick = self._choose(data, key, split)
        x = data["images"][data["offsets"][base][:, None] + pick]  # uint8[n, k+q, H, W, C]
        if self._rotates[split]:
            # All four rotations of the (small) gathered block, then one select per class.
            rots = jnp.stack([jnp.rot90(x, r, axes=(2, 3)) for r in range(4)])  # [4, n, k+q, H, W, C]
            x = rots[rot_t[cls], jnp.arange(n)]
        x = x.astype(jnp.float32) / 255.0
        sx = x[:, :k].reshape(n * k, *self.image_shape)
        qx = x[:, k:].reshape(n * q, *self.image_shape)
        ys, yq = self._labels()
        return SupervisedTask(support=(sx, ys), query=(qx, yq))

    # -- the frozen evaluation sets as examples of the view ---------------------------------
    def eval_task_examples(self, split: str = "test", start: int = 0, stop: int | None = None) -> SupervisedTask:
        """``eval_tasks(split, start, stop)`` with each image replaced by its example index (int32).

        The index is the image's position in the split's examples (the non-episodic view's
        order, ``example_images``): ``example_images(split, ids)`` equals the task's images,
        so a learner whose features are a function of each image alone computes them once per
        example instead of once per task (``metabench.harness.evaluate.Evaluator``).
        """
        self.check_split(split)
        keys = self.eval_keys(split)[start:stop]
        if keys.shape[0] == 0:
            raise ConfigError(f"eval_task_examples: empty range {start}:{stop} of {self.num_eval_tasks} tasks")
        fn = self._jitted.get(("eval_examples", split))
        if fn is None:
            counts = np.asarray(self._counts)[self.tables[split].base]
            first = device_array(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32))  # per split class
            k = self.shots

            def ids_of(data: dict[str, Any], key: PRNGKey) -> SupervisedTask:
                cls, _, pick = self._choose(data, key, split)
                ids = first[cls][:, None] + pick.astype(jnp.int32)  # int32[n, k + q]
                ys, yq = self._labels()
                return SupervisedTask(support=(ids[:, :k].reshape(-1), ys), query=(ids[:, k:].reshape(-1), yq))

            fn = jax.jit(jax.vmap(ids_of, in_axes=(None, 0)))
            self._jitted[("eval_examples", split)] = fn
        return fn(self._data(), keys)

    def example_images(self, split: str, ids: Any) -> jax.Array:
        """Images float32[m, H, W, C] of the examples ``ids`` int[m] of ``split`` (view order, no augmentation)."""
        self.check_split(split)
        fn = self._jitted.get(("example_images", split))
        if fn is None:
            rotates = self._rotates[split]
            fn = jax.jit(lambda data, idx: _gather_examples(data, idx, rotates))
            self._jitted[("example_images", split)] = fn
        return fn(self._examples_data(split), jnp.asarray(ids, jnp.int32))


def _gather_examples(data: dict[str, Any], idx: jax.Array, rotates: bool) -> jax.Array:
    """Images float32[n, H, W, C] of examples ``idx`` int32[n] (``_examples_data``'s arrays), each
    rotated by its class's rotation where the split rotates (the rotation classes)."""
    x = data["images"][data["row"][idx]]  # uint8[n, H, W, C]
    if rotates:
        rots = jnp.stack([jnp.rot90(x, r, axes=(1, 2)) for r in range(4)])  # [4, n, H, W, C]
        x = rots[data["rot"][data["cls"][idx]], jnp.arange(x.shape[0])]
    return x.astype(jnp.float32) / 255.0


def permutation_slice(key: PRNGKey, total: int, start: Any, n: int) -> jax.Array:
    """``jax.random.permutation(key, total)[start : start + n]``, the same values, without the full shuffle.

    ``jax.random.permutation`` sorts ``arange(total)`` by fresh uint32 random keys in
    ``ceil(3 log(total) / log(2**32 - 1))`` rounds with ``lax.sort_key_val``; XLA:CPU's
    two-operand sort costs ~8x its one-operand sort (3.4 vs 0.4 ms at 12,240 keys), and the
    epoch sampler needs only ``n`` entries per step. Here each round's keys are drawn the
    same way and sorted alone; the ``n`` wanted entries are traced back through the rounds by
    locating each sorted key in the unsorted ones (``n x total`` comparisons). That is exact
    when a round's keys are distinct; when two collide (probability ~``total**2 / 2**33``
    per round) the stable sort's tie order decides, and ``lax.cond`` runs the full
    ``jax.random.permutation`` instead. Equality is tested (``tests/test_permutation_slice.py``).
    """
    rounds = int(np.ceil(3 * np.log(max(1, total)) / np.log(np.iinfo(np.uint32).max)))
    if rounds == 0:  # total <= 1
        return start + jnp.arange(n, dtype=jnp.int32)
    k, bits = key, []
    for _ in range(rounds):  # jax.random.permutation's key schedule (_shuffle: key, subkey = split(key))
        k, sub = jax.random.split(k)
        bits.append(jax.random.bits(sub, (total,), jnp.uint32))
    ordered = [jax.lax.sort(b) for b in bits]
    ties = jnp.zeros((), bool)
    for o in ordered:
        ties = ties | jnp.any(o[1:] == o[:-1])

    def traced(_: Any) -> jax.Array:
        pos = start + jnp.arange(n, dtype=jnp.int32)  # positions in the last round's output
        for b, o in zip(bits[::-1], ordered[::-1]):  # output r of a round is its input at argsort(b)[r]
            pos = jnp.argmax(b[None, :] == o[pos][:, None], axis=1).astype(jnp.int32)
        return pos

    def full(_: Any) -> jax.Array:
        return jax.lax.dynamic_slice(jax.random.permutation(key, total).astype(jnp.int32), (start,), (n,))

    return jax.lax.cond(ties, full, traced, None)


def device_array(x: np.ndarray) -> jax.Array:
    """``x`` as a JAX array, without copying a read-only memory map where the backend allows it.

    ``jnp.asarray`` always copies (0.9 s for the 1.27 GB miniImageNet pool on a 2-core CPU);
    ``jax.device_put`` of an aligned host array aliases it on the CPU backend. Aliasing is
    safe only for data nothing can change: a ``mode="r"`` ``np.memmap`` of a cache file, which
    ``metabench.data.cache`` never writes in place (it replaces whole directories). Any
    other array (writable, or a view of writable memory) is copied first. (``device_put``
    also avoids the small ``jit(stage)`` compile that ``jnp.asarray`` does per array.)
    """
    if isinstance(x, np.memmap) and x.mode == "r" and not x.flags.writeable:
        return jax.device_put(x)
    return jax.device_put(np.array(x, copy=True))  # a private copy: aliasing it is harmless


def choice_without_replacement(key: PRNGKey, total: int, n: int) -> jax.Array:
    """int32[n]: ``n`` distinct ints of ``[0, total)`` in uniformly random order.

    Floyd's algorithm (Bentley & Floyd, CACM 1987) draws the set with ``n`` random ints
    instead of permuting all ``total`` (what ``jax.random.choice(replace=False)`` does),
    then a permutation of the ``n`` gives the order (the task's label assignment).
    """
    k_set, k_order = jax.random.split(key)
    js = total - n + jnp.arange(n, dtype=jnp.int32)
    t = jax.random.randint(k_set, (n,), 0, js + 1, dtype=jnp.int32)
    chosen = jnp.full((n,), -1, jnp.int32)
    for j in range(n):
        chosen = chosen.at[j].set(jnp.where(jnp.any(chosen == t[j]), js[j], t[j]))
    return chosen[jax.random.permutation(k_order, n)]
