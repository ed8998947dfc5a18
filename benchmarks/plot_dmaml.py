"""Curves and tables of the DMAML reproductions (``benchmarks/repro_dmaml.py``) from their result JSON.

For every experiment group of the manifest: the validation metric after the last
validation step against runs (mean of the seeds, shaded 95 % CI), one plot per group in
``leaderboard/plots/dmaml_<group>.png``, and a summary (final test metric per seed, their
mean and CI; validation metric at every recorded run) in
``benchmarks/results/dmaml_repro_summary.json``.

CI over seeds: Student-t, two-sided 95 %, ``t_{0.975, n-1} * s / sqrt(n)`` (4.30 for n = 3).
The thesis (section 5.2) plots seaborn's ci95 of n = 3 runs with a degree-10 polynomial
trend line instead of the mean; here the plotted line is the plain mean.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "benchmarks" / "results" / "dmaml_repro_manifest.json"
SUMMARY = ROOT / "benchmarks" / "results" / "dmaml_repro_summary.json"
PLOTS = ROOT / "leaderboard" / "plots"


def t_ci(values: list[float]) -> float | None:
    """Half-width of the two-sided 95 % Student-t interval of the mean (None for n < 2)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def summarise(manifest: dict[str, Any]) -> dict[str, Any]:
    """Group -> label -> summary, for the configurations of ``repro_dmaml.groups()`` that have results.

    A configuration shared by two groups (the scaling baseline is the 6.1 DMAML run) is one
    set of runs listed in both.
    """
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from repro_dmaml import groups, key_of

    by: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for group, labels in groups().items():
        for label, c in labels.items():
            for seed in range(10):
                entry = manifest.get(key_of(c, seed))
                if entry is not None:
                    rec = json.loads((ROOT / entry["result"]).read_text())
                    by[group][label].append({**entry, "record": rec})
    out: dict[str, Any] = {}
    for group, labels in sorted(by.items()):
        out[group] = {}
        for label, runs in labels.items():
            runs = sorted(runs, key=lambda r: r["seed"])
            tests = [r["record"]["metrics"][0]["mean"] for r in runs]
            steps = [h["step"] for h in runs[0]["record"]["validation"]["history"]]
            vals = np.array([[h["value"] for h in r["record"]["validation"]["history"]] for r in runs])
            rec0 = runs[0]["record"]
            out[group][label] = {
                "env": rec0["env"]["id"], "learner": rec0["learner"]["id"], "metric": rec0["metrics"][0]["name"],
                "adaptation_step": rec0["metrics"][0].get("adaptation_step"),
                "seeds": [r["seed"] for r in runs], "results": [r["result"] for r in runs],
                "test_per_seed": tests, "test_mean": float(np.mean(tests)), "test_ci95_t": t_ci(tests),
                "val_steps": steps, "val_mean": vals.mean(0).tolist(),
                "val_ci95_t": [t_ci(list(vals[:, i])) for i in range(vals.shape[1])],
                "train_wall_s": [r["record"]["train"]["wall_time_s"] for r in runs],
                "tasks_seen": rec0["train"]["tasks"], "code": [r["record"]["code"] for r in runs],
            }
    return out


def plot(summary: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    PLOTS.mkdir(parents=True, exist_ok=True)
    for group, labels in summary.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, s in labels.items():
            x, y = np.asarray(s["val_steps"]), np.asarray(s["val_mean"])
            ci = np.asarray([c if c is not None else 0.0 for c in s["val_ci95_t"]])
            ax.plot(x, y, label=f"{label} (n={len(s['seeds'])})")
            ax.fill_between(x, y - ci, y + ci, alpha=0.2)
        first = next(iter(labels.values()))
        ax.set_xlabel("DMAML runs (meta_train_step)")
        ax.set_ylabel(f"validation {first['metric']} after {first['adaptation_step']} step(s)")
        ax.set_title(f"{group}: {first['env']}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = PLOTS / f"dmaml_{group}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown(summary: dict[str, Any]) -> str:
    """One table per group: validation mean at a quarter and at the end of training, test mean +- t-CI."""
    out = []
    for group, labels in summary.items():
        first = next(iter(labels.values()))
        q = len(first["val_steps"]) * 3 // 10
        out.append(f"\n{group} ({first['env']}, {first['metric']} after {first['adaptation_step']} step(s); "
                   f"{first['learner']}):\n")
        out.append(f"| configuration | val @{first['val_steps'][q]} | val @{first['val_steps'][-1]} | "
                   "test (best val. state), mean +- t-CI | test per seed |")
        out.append("|---|---|---|---|---|")
        for label, s in labels.items():
            ci = "n/a" if s["test_ci95_t"] is None else f"{s['test_ci95_t']:.3f}"
            out.append(f"| {label} | {s['val_mean'][q]:.3f} | {s['val_mean'][-1]:.3f} | {s['test_mean']:.3f} +- {ci} "
                       f"| {', '.join(f'{v:.3f}' for v in s['test_per_seed'])} |")
    return "\n".join(out)


def main() -> int:
    manifest = json.loads(MANIFEST.read_text())
    summary = summarise(manifest)
    tmp = SUMMARY.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, SUMMARY)
    for p in plot(summary):
        print(f"wrote {p}")
    print(markdown(summary))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
