"""Cross-domain few-shot classification between miniImageNet and CUB (Chen et al. 2019, section 4.4).

Description
    Meta-train on every class of one dataset, evaluate on the other. Ids
    ``mini-imagenet-to-cub-5w{1,5}s`` and ``cub-to-mini-imagenet-5w{1,5}s`` (15 queries).

Data
    Both datasets, as their own envs read them (``metabench.envs.mini_imagenet``,
    ``metabench.envs.cub``), both 84x84x3 uint8, through their caches. The env holds one
    ``ImagePool`` with the classes it uses: every class of the training dataset, then the
    val and test classes of the evaluation dataset (base classes named
    ``"<dataset>/<class>"``). ``spec.data_hash`` records both datasets' data hashes as
    ``"mini-imagenet:<hash>;cub:<hash>"`` (also in ``env.source_hashes``).

Task distribution
    The shared ``ClassificationEnv`` sampler (see ``metabench.classification``).

Splits
    miniImageNet -> CUB: ``train`` = all 100 miniImageNet classes (train + val + test of
    the Ravi split), ``val`` = the 50 CUB val classes, ``test`` = the 50 CUB novel classes
    (Chen split). CUB -> miniImageNet: ``train`` = all 200 CUB classes, ``val`` = the 16
    miniImageNet val classes, ``test`` = the 20 miniImageNet test classes.

Version history
    v0: initial version.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.envs.mini_imagenet import LoadedImages, normalise_root
from metabench.errors import ConfigError
from metabench.spec import EnvSpec

#: The datasets a cross-domain env can combine, in the order their hashes are recorded.
DATASETS = ("mini-imagenet", "cub")


def load_dataset(name: str, root: str | None, download: bool) -> LoadedImages:
    """Load one of ``DATASETS`` (``download`` applies to CUB only; miniImageNet has no download)."""
    if name == "mini-imagenet":
        from metabench.envs.mini_imagenet import load_mini_imagenet

        return load_mini_imagenet(root)
    from metabench.envs.cub import load_cub

    return load_cub(root, download)


def combine(train: tuple[str, LoadedImages], evaluation: tuple[str, LoadedImages]) -> tuple[ImagePool, dict[str, SplitTable]]:
    """One pool: all classes of the ``train`` dataset, then the val and test classes of ``evaluation``.

    Returns the pool (uint8[N, H, W, C], copied once from both caches) and the split tables.
    """
    (train_name, tr), (eval_name, ev) = train, evaluation
    if tr.pool.images.shape[1:] != ev.pool.images.shape[1:]:
        raise ConfigError(f"cross-domain: image shapes differ: {train_name} {tr.pool.images.shape[1:]}, {eval_name} {ev.pool.images.shape[1:]}")
    chosen = [(train_name, tr, b) for b in range(len(tr.pool.names))]
    chosen += [(eval_name, ev, int(b)) for s in ("val", "test") for b in ev.classes[s]]
    counts = np.array([int(d.pool.counts[b]) for _, d, b in chosen], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    images = np.empty((int(counts.sum()), *tr.pool.images.shape[1:]), dtype=np.uint8)
    # Contiguous runs of base classes are copied in one slice (the whole training dataset is one run).
    i = 0
    while i < len(chosen):
        _, d, b = chosen[i]
        j = i + 1
        while j < len(chosen) and chosen[j][1] is d and chosen[j][2] == chosen[j - 1][2] + 1:
            j += 1
        lo = int(d.pool.offsets[b])
        hi = int(d.pool.offsets[chosen[j - 1][2]] + d.pool.counts[chosen[j - 1][2]])
        images[offsets[i] : offsets[i] + (hi - lo)] = d.pool.images[lo:hi]
        i = j
    names = tuple(f"{n}/{d.pool.names[b]}" for n, d, b in chosen)
    n_train = len(tr.pool.names)
    n_val = len(ev.classes["val"])
    tables = {
        "train": SplitTable.of(np.arange(n_train)),
        "val": SplitTable.of(np.arange(n_train, n_train + n_val)),
        "test": SplitTable.of(np.arange(n_train + n_val, len(chosen))),
    }
    return ImagePool(images, offsets, counts, names), tables


class CrossDomain(ClassificationEnv):
    """Meta-train on all classes of ``source``, validate and test on ``target`` (module docstring)."""

    def __init__(
        self,
        spec: EnvSpec,
        *,
        ways: int,
        shots: int,
        queries: int = 15,
        source: str,
        target: str,
        root: str | os.PathLike[str] | None = None,
        download: bool = False,
    ):
        if source not in DATASETS or target not in DATASETS or source == target:
            raise ConfigError(
                f"{spec.id}: source and target must be two different datasets of {DATASETS}, got {source!r} -> {target!r}"
            )
        spec, self.root = normalise_root(spec, root)
        self.source, self.target, self.download = source, target, bool(download)
        self.source_hashes: dict[str, str] = {}
        super().__init__(spec, ways=ways, shots=shots, queries=queries)

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        loaded = {name: load_dataset(name, self.root, self.download) for name in (self.source, self.target)}
        self.source_hashes = {name: loaded[name].data_hash for name in DATASETS}
        pool, tables = combine((self.source, loaded[self.source]), (self.target, loaded[self.target]))
        return pool, tables, ";".join(f"{n}:{h}" for n, h in self.source_hashes.items())
