"""The "published" cell of a canonical row: every stored reference for the learner on the env."""

from __future__ import annotations

import re

from metabench.leaderboard.published import REFERENCE_ENVS, Reference, references, rl_references


def _pct(ref: Reference) -> str:
    if ref.upper is not None:
        return f"{100 * ref.value:.1f}–{100 * ref.upper:.1f} %"
    ci = "" if ref.ci95 is None else f" ± {100 * ref.ci95:.1f}"
    return f"{100 * ref.value:.1f}{ci} %"


def _rl(ref: Reference, step: int | None) -> str:
    curve = ref.curve or (ref.value,)
    k = step if step is not None and step < len(curve) else len(curve) - 1
    path = " → ".join(f"{v:g}" for v in curve[: k + 1])
    return f"{curve[k]:g} after {k} step{'s' if k != 1 else ''} ({path})"


def published_cell(env_id: str, learner_id: str, kind: str, step: int | None = None) -> str:
    """``value, source`` for each reference (``; ``-separated), ``""`` where none exists.

    ``step``: the adaptation step of our headline (RL references are read at it). References
    of a related larger task (``REFERENCE_ENVS``: full Omniglot beside omniglot-lite) say so.
    """
    base = re.sub(r"-v\d+$", "", env_id)
    if kind == "rl":
        return "; ".join(f"{_rl(r, step)}, {r.source}" for r in rl_references(env_id, learner_id))
    parts = [f"{_pct(r)}, {r.source}" for r in references(base, learner_id)]
    if base in REFERENCE_ENVS:
        other, what = REFERENCE_ENVS[base]
        parts += [f"{_pct(r)} ({what}), {r.source}" for r in references(other, learner_id)]
    return "; ".join(parts)
