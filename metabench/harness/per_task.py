"""The per-task block of a result record: the headline metric of every frozen test task.

Schema 1.1 stores it so that two results on the same eval set can be compared task by
task (``metabench compare``). Values are float32 (what ``eval_curve`` returns) written as
their shortest decimal form, so ``0.96`` stays ``0.96`` and decoding to float32 gives back
the exact values; index ``i`` is the ``i``-th task of ``env.eval_tasks("test")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _short(v: np.float32) -> float:
    """The float whose repr is the shortest decimal that rounds to ``v`` in float32."""
    return float(np.format_float_positional(v, unique=True, trim="-")) if np.isfinite(v) else float(v)


def encode_per_task(values: Any, *, metric: str, adaptation_step: int, split: str = "test") -> dict[str, Any]:
    """``{"metric", "split", "adaptation_step", "dtype", "values"}`` of ``values: float[n_tasks]``."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    return {"metric": metric, "split": split, "adaptation_step": int(adaptation_step), "dtype": "float32",
            "values": [_short(x) for x in v]}


def decode_per_task(record: dict[str, Any]) -> np.ndarray | None:
    """The per-task values of ``record`` as float64 (exact float32 values), or None for a
    record without them (schema 1.0, written before the harness stored them)."""
    block = record.get("per_task")
    if not block:
        return None
    return np.asarray(block["values"], dtype=np.float32).astype(np.float64)
