"""All generated pages: ``README.md`` (canonical rows) and ``experiments/<env>.md`` (every result)."""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metabench.leaderboard import fmt
from metabench.leaderboard.canonical import Canonical, aliases, table_learners
from metabench.leaderboard.experiments import render_experiments
from metabench.leaderboard.front import HEADER, bad_files_section, env_section
from metabench.leaderboard.references import unrun_sections
from metabench.leaderboard.summary import TIE_P, LearnerRow, summarize_env

Row = tuple[Path, dict[str, Any]]
EXPERIMENTS_DIR = "experiments"


def _by_env(results: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in results:
        out.setdefault(row[1]["env"]["id"], []).append(row)
    return dict(sorted(out.items()))


def _meta(rows: Sequence[Row], summary: Sequence[LearnerRow]) -> dict[str, Any]:
    canon = [r for s in summary for r in s.records]
    recs = canon or [r for _, r in rows]
    m = recs[0]["metrics"][0]
    eval_hash = collections.Counter(r["env"]["eval_hash"] for r in recs).most_common(1)[0][0]
    steps = {r["metrics"][0].get("adaptation_step") for r in recs}
    return {"kind": recs[0]["env"]["kind"], "metric": m["name"], "higher_is_better": m["higher_is_better"],
            "n_tasks": m["n_tasks"], "eval_hash": eval_hash, "n_results": len(rows),
            "step": steps.pop() if len(steps) == 1 else None}  # the headline's step where every row shares it


def best_elsewhere(rows: Sequence[Row], summary: Sequence[LearnerRow], eval_hash: str) -> dict[str, Any] | None:
    """The best single result on ``eval_hash`` when it is not a canonical run and beats every
    canonical row's mean (or there is none): the page says so, so a reduced-budget canonical
    row marked best is not read as the best anyone got on the env."""
    pool = [r for _, r in rows if r["env"]["eval_hash"] == eval_hash]
    if not pool:
        return None
    higher = bool(pool[0]["metrics"][0]["higher_is_better"])
    sign = 1.0 if higher else -1.0
    top = max(pool, key=lambda r: sign * float(r["metrics"][0]["mean"]))
    canon = [s for s in summary if s.records]
    if any(top is r for s in canon for r in s.records):
        return None
    if canon and sign * float(top["metrics"][0]["mean"]) <= max(sign * float(s.means.mean()) for s in canon):
        return None
    return top


def _notes(env_id: str, rows: Sequence[Row], summary: Sequence[LearnerRow], problems: Mapping[str, str],
           meta: Mapping[str, Any] | None = None, link: str = "") -> list[str]:
    notes = []
    top = best_elsewhere(rows, summary, meta["eval_hash"]) if meta else None
    if top is not None and meta is not None:
        lid = top["learner"]["id"]
        notes.append(f"Best single result in any configuration: `{lid}` "
                     f"{fmt.value(meta['metric'], float(top['metrics'][0]['mean']))} (seed {top['seed']}, config "
                     f"`{top['config_hash'][:8]}`; [experiments]({link}#{lid})), not a canonical run, so not in "
                     "the rows above.")
    hashes = {r["env"]["eval_hash"] for _, r in rows}
    if len(hashes) > 1:
        notes.append(f"Results of this env were evaluated on {len(hashes)} different eval sets (eval hashes); "
                     "rows on different sets are not compared.")
    if env_id in problems:
        notes.append(f"Canonical settings: {problems[env_id]}.")
    alias = {a: b for a, b in aliases().items() if any(s.learner == b for s in summary)}
    if alias:
        notes.append("Not listed (aliases): " + ", ".join(f"`{a}` = `{b}`" for a, b in sorted(alias.items())) + ".")
    return notes


def render_pages(results: Sequence[Row], directory: str | os.PathLike[str],
                 canonical: Mapping[tuple[str, str], Canonical], *, bad: Mapping[str, Sequence[str]] | None = None,
                 problems: Mapping[str, str] | None = None, plots: Mapping[str, Sequence[str]] | None = None,
                 plan_envs: Sequence[str] = ()) -> dict[Path, str]:
    """``{path: text}`` of the main page and one experiments page per env with results."""
    directory = Path(directory)
    problems = dict(problems or {})
    lines = [HEADER.format(tie=TIE_P)]
    if not results:
        lines.append("No results yet: run `metabench run --env ID --learner ID` or `metabench canonical --run`.\n")
    lines += bad_files_section(bad or {}, directory)
    pages: dict[Path, str] = {}
    groups = _by_env(results)
    if groups:
        lines += ["Envs: " + " · ".join(f"[{e}](#{fmt.slug(e)})" for e in groups), ""]
    for env_id, rows in groups.items():
        kind = rows[0][1]["env"]["kind"]
        learners = [lid for lid in table_learners(kind)
                    if (env_id, lid) in canonical or any(r["learner"]["id"] == lid for _, r in rows)]
        summary = summarize_env(env_id, rows, canonical, learners)
        page = directory / EXPERIMENTS_DIR / f"{env_id}.md"
        link = f"{EXPERIMENTS_DIR}/{env_id}.md"
        meta = _meta(rows, summary)
        lines += env_section(env_id, meta, summary, link, _notes(env_id, rows, summary, problems, meta, link))
        pngs = [os.path.relpath(directory / p, page.parent).replace(os.sep, "/") for p in (plots or {}).get(env_id, [])]
        pages[page] = render_experiments(env_id, rows, canonical, learners, page, f"../README.md#{fmt.slug(env_id)}", pngs)
    missing = [e for e in plan_envs if e not in groups]
    if missing:
        lines += ["## Planned envs without any result yet", "", ", ".join(f"`{e}`" for e in missing), ""]
    if results:
        lines += unrun_sections(list(groups))
    pages[directory / "README.md"] = "\n".join(lines).rstrip() + "\n"
    return pages
