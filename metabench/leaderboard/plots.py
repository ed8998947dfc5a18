"""PNG plots of the leaderboard (matplotlib, Agg backend, imported lazily).

Per env: the headline metric with CI error bars per run; validation metric vs training
step; the metric vs adaptation step when learners report per-step curves. The line plots
show the best ``MAX_LINES`` runs plus the best run of every other learner (a
``random-policy`` reference stays visible), labelled with their row number in the table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def write_plots(results: Sequence[Row], plot_dir: str | Path) -> dict[str, list[str]]:
    """Write the plots; returns ``env id -> [png paths relative to plot_dir's parent]``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[str]] = {}
    for env_id, rows in group_by_env(results).items():
        records = [r for _, r in rows]
        metric = headline(records[0])["name"]
        files = []

        points = [records[i] for i in sorted(shown_runs(records, MAX_POINTS))]
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(points) + 2), 3.2))
        ax.errorbar(range(len(points)), [headline(r)["mean"] for r in points],
                    yerr=[headline(r)["ci95"] for r in points], fmt="o", capsize=4)
        ax.set_xticks(range(len(points)), [_label(r) for r in points], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(f"test {metric} (95% CI)")
        ax.set_title(env_id + (f" (best {len(points)} of {len(records)} runs, each learner's best among them)"
                               if len(points) < len(records) else ""), fontsize=9)
        files.append(_save(fig, plot_dir / f"{_slug(env_id)}__{metric}.png"))

        with_val = [(i, r) for i, r in enumerate(records, 1) if r["validation"]["history"]]
        if with_val:
            fig, ax = plt.subplots(figsize=(7, 3.2))
            picked = [with_val[k] for k in shown_runs([r for _, r in with_val])]
            for i, r in picked:
                h = r["validation"]["history"]
                ax.plot([p["step"] for p in h], [p["value"] for p in h], marker=".", label=f"#{i} {_label(r)}")
            ax.set_xlabel("meta-training step")
            ax.set_ylabel(f"val {r['validation']['metric']}")
            ax.set_title(_lines_title(env_id, "validation", len(picked), len(with_val)), fontsize=9)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
            files.append(_save(fig, plot_dir / f"{_slug(env_id)}__validation.png"))

        with_curves = [(i, r) for i, r in enumerate(records, 1) if r["curves"]]
        if with_curves:
            fig, ax = plt.subplots(figsize=(7, 3.2))
            picked = [with_curves[k] for k in shown_runs([r for _, r in with_curves])]
            for i, r in picked:
                c = r["curves"][0]
                ax.errorbar(c["x"], c["mean"], yerr=c["ci95"], marker=".", capsize=3, label=f"#{i} {_label(r)}")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_xlabel("adaptation step")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(_lines_title(env_id, "adaptation", len(picked), len(with_curves)), fontsize=9)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
            files.append(_save(fig, plot_dir / f"{_slug(env_id)}__adaptation.png"))
        out[env_id] = [f"{plot_dir.name}/{f.name}" for f in files]
        plt.close("all")
    return out


def _save(fig: Any, path: Path) -> Path:
    from metabench.atomic import atomic_write_bytes
    import io

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())
