"""Checkpoints: state pytrees as ``.npz`` of their leaves plus JSON metadata.

A checkpoint holds one or more named pytrees (the current state and the best-so-far
state) and a metadata dict (step, RNG position, best-val bookkeeping, config hash).
Restoring needs a template pytree of the same structure (``learner.init(key)``): the
leaves are refilled in order after checking their count, shapes and dtypes, and placed
with the template leaf's sharding. Typed PRNG key leaves are stored as their key data.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import MetabenchError
from metabench.atomic import atomic_write_bytes

FORMAT_VERSION = 1
_META = "__meta__"


class CheckpointError(MetabenchError):
    """A checkpoint that cannot be read or does not fit the run (the message names the file)."""


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_host(leaf: Any) -> tuple[np.ndarray, str | None]:
    """A leaf as a numpy array, and the PRNG impl name when it was a typed key."""
    if _is_key(leaf):
        return np.asarray(jax.device_get(jax.random.key_data(leaf))), str(jax.random.key_impl(leaf))
    return np.asarray(jax.device_get(leaf)), None


def save_checkpoint(path: str | os.PathLike[str], trees: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``trees`` (name -> pytree) and ``meta`` (JSON-able) to ``path`` atomically."""
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {}
    for name, tree in trees.items():
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        keys = []
        for i, leaf in enumerate(leaves):
            arr, impl = _to_host(leaf)
            arrays[f"{name}/{i:05d}"] = arr
            keys.append(impl)
        layout[name] = {"n_leaves": len(leaves), "treedef": str(treedef), "key_impls": keys}
    header = {"format_version": FORMAT_VERSION, "layout": layout, "meta": dict(meta)}
    arrays[_META] = np.array(json.dumps(header, sort_keys=True))
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return atomic_write_bytes(path, buf.getvalue())


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata dict of a checkpoint (raises ``CheckpointError`` naming the file)."""
    return _open(path)[0]["meta"]


def _open(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(str(arrays.pop(_META)))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a metabench checkpoint ({type(e).__name__}: {e}); "
            "delete it to start over, or run without --resume"
        ) from None
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {header.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return header, arrays


def load_checkpoint(
    path: str | os.PathLike[str], templates: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refill each template pytree from ``path``; returns ``(trees, meta)``."""
    header, arrays = _open(path)
    out = {}
    for name, template in templates.items():
        layout = header["layout"].get(name)
        if layout is None:
            raise CheckpointError(f"checkpoint {path} has no tree {name!r} (has: {sorted(header['layout'])})")
        leaves, treedef = jax.tree_util.tree_flatten(template)
        if layout["n_leaves"] != len(leaves):
            raise CheckpointError(
                f"checkpoint {path}: tree {name!r} has {layout['n_leaves']} leaves, the learner's state has "
                f"{len(leaves)}; it was written by a different learner or config"
            )
        new = []
        for i, (leaf, impl) in enumerate(zip(leaves, layout["key_impls"])):
            arr = arrays.get(f"{name}/{i:05d}")
            if arr is None:
                raise CheckpointError(f"checkpoint {path} is missing leaf {name}/{i}")
            want, _ = _to_host_shape(leaf)
            if (arr.shape, arr.dtype) != want:
                raise CheckpointError(
                    f"checkpoint {path}: leaf {name}/{i} has shape {arr.shape} {arr.dtype}, the learner's state "
                    f"expects {want[0]} {want[1]}; it was written by a different learner or config"
                )
            value: Any = jnp.asarray(arr)
            if impl is not None:
                value = jax.random.wrap_key_data(value, impl=impl)
            sharding = getattr(leaf, "sharding", None)
            if isinstance(leaf, jax.Array) and sharding is not None:
                value = jax.device_put(value, sharding)
            elif isinstance(leaf, (bool, int, float)):
                value = type(leaf)(arr.item())
            elif not isinstance(leaf, jax.Array):
                value = arr
            new.append(value)
        out[name] = jax.tree_util.tree_unflatten(treedef, new)
    return out, header["meta"]


def _to_host_shape(leaf: Any) -> tuple[tuple[tuple[int, ...], np.dtype], None]:
    if _is_key(leaf):
        data = jax.eval_shape(jax.random.key_data, leaf)
        return (tuple(data.shape), np.dtype(data.dtype)), None
    arr = np.asarray(leaf) if not isinstance(leaf, jax.Array) else None
    if arr is not None:
        return (arr.shape, arr.dtype), None
    return (tuple(leaf.shape), np.dtype(leaf.dtype)), None
