"""The leaderboard: a schema-validated result store, the generated README table and plots.

>>> from metabench.leaderboard import read_results, regenerate
>>> regenerate("leaderboard")   # leaderboard/results/*.json -> leaderboard/README.md + plots/
"""

from __future__ import annotations

import os
from pathlib import Path

from metabench.atomic import atomic_write_text
from metabench.debris import clean_stale_temps
from metabench.leaderboard.schema import SCHEMA, schema_errors, schema_json
from metabench.leaderboard.store import ResultError, load_result, read_results, result_filename, write_result
from metabench.leaderboard.table import group_by_env, render


def regenerate(directory: str | os.PathLike[str] = "leaderboard", *, plots: bool = True) -> Path:
    """Rewrite ``directory/README.md`` (and ``directory/plots/*.png``) from ``directory/results``.

    Temp files of killed result writers in ``directory/results`` older than the grace period
    are removed first (``metabench.debris``); they are never read as results.
    """
    directory = Path(directory)
    clean_stale_temps(directory / "results")
    results = read_results(directory / "results")
    pngs = {}
    if plots and results:
        from metabench.leaderboard.plots import write_plots

        pngs = write_plots(results, directory / "plots")
    return atomic_write_text(directory / "README.md", render(results, directory, pngs))


__all__ = [
    "SCHEMA",
    "ResultError",
    "group_by_env",
    "load_result",
    "read_results",
    "regenerate",
    "render",
    "result_filename",
    "schema_errors",
    "schema_json",
    "write_result",
]
