"""The learner table: ids and string entry points of metabench's baseline learners."""

from __future__ import annotations

if __name__ != "metabench.baselines":  # pragma: no cover
    raise ImportError("import this package as metabench.baselines, not as a top-level 'baselines'")
