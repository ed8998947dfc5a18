"""Task pytrees. A task is a pytree of arrays; a batch of tasks has a leading task axis.

Supervised tasks (classification, regression) carry ``support=(x, y)`` and
``query=(x, y)``. RL tasks are the parameter pytree of a task-conditioned environment
(a goal, a velocity, a direction), see ``docs/contract.md``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array


class SupervisedTask(NamedTuple):
    """One few-shot task.

    Classification (N ways, K shots, Q queries):
        support = (x: float32[N*K, H, W, C], y: int32[N*K])
        query   = (x: float32[N*Q, H, W, C], y: int32[N*Q])
    with labels in ``0..N-1`` in class-major order (``y = [0]*K + [1]*K + ...``), the
    class -> label assignment drawn at random per task.

    Regression (K shots, Q queries):
        support = (x: float32[K, D_in], y: float32[K, D_out]); query likewise with Q rows.
    """

    support: tuple[Array, Array]
    query: tuple[Array, Array]


Task = Any  # SupervisedTask, or an RL parameter pytree
