"""Number formats shared by the leaderboard pages."""

from __future__ import annotations


def value(metric: str, v: float) -> str:
    """Accuracy in percent with two decimals, anything else with four significant digits."""
    return f"{100 * v:.2f} %" if metric == "accuracy" else f"{v:.4g}"


def bare(metric: str, v: float) -> str:
    """As ``value`` without the unit (inside intervals)."""
    return f"{100 * v:.2f}" if metric == "accuracy" else f"{v:.4g}"


def spread(metric: str, v: float) -> str:
    """A standard deviation or half-width: two significant digits (percent points for accuracy)."""
    return f"{100 * v:.2g}" if metric == "accuracy" else f"{v:.2g}"


def slug(text: str) -> str:
    """A GitHub-style heading anchor: lower case, spaces to dashes, other punctuation dropped."""
    return "".join(c for c in text.lower().replace(" ", "-") if c.isalnum() or c in "-_")
