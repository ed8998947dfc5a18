"""A curve as one line of text: ``▁▅▇█ -40.2 → -4.26``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled between the curve's own minimum and maximum (flat: ``▄``)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return BARS[3] * len(values)
    return "".join(BARS[round((v - lo) / (hi - lo) * (len(BARS) - 1))] for v in values)


def curve_text(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """``sparkline first → last`` (just the value for a one-point curve)."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{sparkline(values)} {fmt(values[0])} → {fmt(values[-1])}"
