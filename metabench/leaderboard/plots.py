"""PNG plots of the leaderboard (matplotlib, Agg backend, imported lazily).

Per env: the headline metric with CI error bars per run; validation metric vs training
step; the metric vs adaptation step when learners report per-step curves. The line plots
show the best ``MAX_LINES`` runs plus the best run of every other learner (a
``random-policy`` reference stays visible), labelled with their row number in the table.
Each figure is first a plain-data spec (``figure_specs``), so an unchanged one is not redrawn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metabench.leaderboard.memo import CACHE_DIR, Memo, digest, digest_json
from metabench.leaderboard.table import Row, group_by_env, headline


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


#: runs per line plot beyond each learner's best (module docstring)
MAX_LINES = 6
#: runs in the headline plot beyond each learner's best (a width of 0.9 inch a run: 1,000
#: results made PNGs thousands of pixels wide, most of the render time)
MAX_POINTS = 40


def _label(record: dict[str, Any]) -> str:
    return f"{record['learner']['id']} s{record['seed']} ({record['config_hash'][:6]})"


def shown_runs(records: Sequence[dict[str, Any]], limit: int = MAX_LINES) -> list[int]:
    """Indices (table order, best first) of the runs a line plot draws: the first ``limit``
    and the first run of every learner id not among them."""
    keep = list(range(min(limit, len(records))))
    seen = {records[i]["learner"]["id"] for i in keep}
    for i, r in enumerate(records):
        if r["learner"]["id"] not in seen:
            keep.append(i)
            seen.add(r["learner"]["id"])
    return keep


def _lines_title(env_id: str, what: str, shown: int, total: int) -> str:
    return f"{env_id}: {what}" + (f" ({shown} of {total} runs)" if shown < total else "")


def figure_specs(env_id: str, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The env's figures as plain data (``kind``, ``file``, what is drawn, labels, title), in
    table order: the headline metric per run; validation vs step; metric vs adaptation step."""
    metric = headline(records[0])["name"]
    slug = _slug(env_id)
    specs: list[dict[str, Any]] = []
    points = [records[i] for i in sorted(shown_runs(records, MAX_POINTS))]
    specs.append({
        "kind": "headline", "file": f"{slug}__{metric}.png",
        "y": [headline(r)["mean"] for r in points], "yerr": [headline(r)["ci95"] for r in points],
        "labels": [_label(r) for r in points], "ylabel": f"test {metric} (95% CI)",
        "title": env_id + (f" (best {len(points)} of {len(records)} runs, each learner's best among them)"
                           if len(points) < len(records) else ""),
    })
    with_val = [(i, r) for i, r in enumerate(records, 1) if r["validation"]["history"]]
    if with_val:
        picked = [with_val[k] for k in shown_runs([r for _, r in with_val])]
        specs.append({
            "kind": "validation", "file": f"{slug}__validation.png",
            "lines": [{"x": [p["step"] for p in r["validation"]["history"]],
                       "y": [p["value"] for p in r["validation"]["history"]],
                       "label": f"#{i} {_label(r)}"} for i, r in picked],
            "ylabel": f"val {picked[-1][1]['validation']['metric']}",
            "title": _lines_title(env_id, "validation", len(picked), len(with_val)),
        })
    with_curves = [(i, r) for i, r in enumerate(records, 1) if r["curves"]]
    if with_curves:
        picked = [with_curves[k] for k in shown_runs([r for _, r in with_curves])]
        specs.append({
            "kind": "adaptation", "file": f"{slug}__adaptation.png",
            "lines": [{"x": r["curves"][0]["x"], "y": r["curves"][0]["mean"], "yerr": r["curves"][0]["ci95"],
                       "label": f"#{i} {_label(r)}"} for i, r in picked],
            "ylabel": f"test {metric}",
            "title": _lines_title(env_id, "adaptation", len(picked), len(with_curves)),
        })
    return specs


def _draw(spec: dict[str, Any], path: Path) -> None:
    """Draw one ``figure_specs`` entry to ``path`` (PNG, atomically)."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    if spec["kind"] == "headline":
        n = len(spec["y"])
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * n + 2), 3.2))
        ax.errorbar(range(n), spec["y"], yerr=spec["yerr"], fmt="o", capsize=4)
        ax.set_xticks(range(n), spec["labels"], rotation=30, ha="right", fontsize=7)
    else:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for line in spec["lines"]:
            if "yerr" in line:
                ax.errorbar(line["x"], line["y"], yerr=line["yerr"], marker=".", capsize=3, label=line["label"])
            else:
                ax.plot(line["x"], line["y"], marker=".", label=line["label"])
        if spec["kind"] == "adaptation":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("meta-training step" if spec["kind"] == "validation" else "adaptation step")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"], fontsize=9)
    _save(fig, path)
    plt.close(fig)


def write_plots(results: Sequence[Row], plot_dir: str | Path, memo: Memo | None = None) -> dict[str, list[str]]:
    """Write the plots; returns ``env id -> [png paths relative to plot_dir's parent]``.

    ``memo`` (``plot_memo``): a plot whose spec is unchanged and whose file exists is not
    redrawn (matplotlib is ~0.1 s a figure, most of a render over many envs).
    """
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[str]] = {}
    imported = False
    for env_id, rows in group_by_env(results).items():
        files = []
        for spec in figure_specs(env_id, [r for _, r in rows]):
            path = plot_dir / spec["file"]
            key = digest_json(spec)
            if not (memo is not None and path.exists() and memo.hit(spec["file"], key)):
                if not imported:
                    import matplotlib

                    matplotlib.use("Agg", force=False)
                    imported = True
                _draw(spec, path)
                if memo is not None:
                    memo.record(spec["file"], key)
            files.append(path)
        out[env_id] = [f"{plot_dir.name}/{f.name}" for f in files]
    if memo is not None:
        try:
            memo.save()
        except OSError:
            pass
    return out


def plot_memo(directory: str | Path) -> Memo:
    """The plot memo of a leaderboard directory, ``<directory>/.cache/plots.json``, salted
    with matplotlib's version and the source of this module."""
    import importlib.metadata

    salt = digest(importlib.metadata.version("matplotlib") + Path(__file__).read_text(encoding="utf-8"))
    return Memo(Path(directory) / CACHE_DIR / "plots.json", salt)


def _save(fig: Any, path: Path) -> Path:
    from metabench.atomic import atomic_write_bytes
    import io

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())
