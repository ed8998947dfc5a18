"""The leaderboard: a schema-validated result store, the generated pages and plots.

>>> from metabench.leaderboard import read_results, regenerate
>>> regenerate("leaderboard")   # leaderboard/results/*.json -> README.md, experiments/*.md, plots/
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from metabench.atomic import atomic_write_text
from metabench.debris import clean_stale_temps
from metabench.leaderboard.canonical import CANONICAL_FILE, Canonical, resolve_canonical
from metabench.leaderboard.plan import PLAN_ENVS
from metabench.leaderboard.schema import SCHEMA, schema_errors, schema_json
from metabench.leaderboard.store import (
    ResultError,
    load_result,
    read_results,
    result_filename,
    scan_results,
    validation_memo,
    write_result,
)
from metabench.leaderboard.table import group_by_env, render


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def regenerate(directory: str | os.PathLike[str] = "leaderboard", *, plots: bool = True,
               canonical: Mapping[tuple[str, str], Canonical] | None = None,
               plan_envs: Sequence[str] = PLAN_ENVS, report: Callable[[str], None] | None = _stderr) -> Path:
    """Rewrite ``directory/README.md``, ``directory/experiments/<env>.md`` (and ``plots/*.png``)
    from ``directory/results``; returns the README's path.

    Files that passed validation before and plots whose inputs are unchanged are not redone
    (content digests in ``directory/.cache/``, ``metabench.leaderboard.memo``).

    Temp files of killed result writers in ``directory/results`` older than the grace period
    are removed first (``metabench.debris``); they are never read as results. A file that is
    not a valid result (corrupt, partial, off-schema) is skipped, named on the page and passed
    to ``report``. ``canonical``: the canonical table (default: computed for the envs with
    results and ``plan_envs``, cached in ``directory/canonical.json``).
    """
    from metabench.leaderboard.pages import render_pages

    directory = Path(directory)
    clean_stale_temps(directory / "results")
    results, bad = scan_results(directory / "results", validation_memo(directory))
    problems: dict[str, str] = {}
    if canonical is None:
        envs = [*dict.fromkeys(r["env"]["id"] for _, r in results), *plan_envs]
        canonical, problems = resolve_canonical(envs, directory / CANONICAL_FILE)
    if report is not None:
        for path, errs in sorted(bad.items()):
            report(f"metabench leaderboard: skipped {path}: {'; '.join(errs[:3])}")
    pngs = {}
    if plots and results:
        from metabench.leaderboard.plots import plot_memo, write_plots

        pngs = write_plots(results, directory / "plots", plot_memo(directory))
    pages = render_pages(results, directory, canonical, bad=bad, problems=problems, plots=pngs, plan_envs=plan_envs)
    readme = directory / "README.md"
    for path, text in pages.items():
        if path != readme:
            atomic_write_text(path, text)
    return atomic_write_text(readme, pages[readme])


__all__ = [
    "SCHEMA",
    "ResultError",
    "group_by_env",
    "load_result",
    "read_results",
    "regenerate",
    "render",
    "result_filename",
    "scan_results",
    "schema_errors",
    "schema_json",
    "write_result",
]
