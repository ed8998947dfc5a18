"""Seed 003 Figure 3.3 (and a reduced Figure 3.2) on 5-shot sinusoid, through the harness.

Figure 3.3: median meta-test MSE of MAML, the meta-learner LSTM and TURTLE over independent
runs, with 95 % confidence intervals. Protocol of seed 003 §3.5.2: 70K training tasks, 1K
validation tasks every 2.5K training tasks, 2K test tasks, 30 runs. Here ``--tasks`` training
tasks (steps = tasks / meta_batch), validation on ``--val-tasks`` frozen tasks every
``--val-every-tasks`` tasks, the env's 600 frozen test tasks, ``--seeds`` runs; every run is
a normal harness run whose JSON lands in ``<out>/results``. The CI of a median over runs is
the distribution-free order-statistic interval (binomial, >= 95 % coverage; with 5 runs
it is the range of the runs).

    python benchmarks/reproduce/seed003_sinusoid.py --tasks 10000 --seeds 0-4
    python benchmarks/reproduce/seed003_sinusoid.py --figure 3.2 --tasks 5000 --seeds 0-2
    python benchmarks/reproduce/seed003_sinusoid.py --plot-only ...     # re-plot from the JSON

Figure 3.2 (reduced): TURTLE first vs second order for T in ``--turtle-steps`` and hidden
layers in ``--turtle-layers`` (alpha fixed to ones and the gradient as the only input,
§3.5.1), against first- and second-order MAML with the same T.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from metabench.leaderboard.stats import median_ci


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def configurations(figure: str, args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, learner id, overrides)`` of the figure's runs."""
    if figure == "3.3":
        return [(lid, lid, {}) for lid in args.learners.split(",")]
    out = []
    for t in (int(s) for s in args.turtle_steps.split(",")):
        out += [(f"MAML T={t}", "maml", {"inner_steps": t, "eval_steps": t}),
                (f"FO-MAML T={t}", "maml-fo", {"inner_steps": t, "eval_steps": t})]
        for layers in (int(s) for s in args.turtle_layers.split(",")):
            common = {"inner_steps": t, "layers": (20,) * layers, "alpha_init": 1.0, "learn_alpha": False}
            out += [(f"TURTLE T={t} L={layers}", "turtle", common), (f"FO-TURTLE T={t} L={layers}", "turtle-fo", common)]
    return out


def run_all(configs: list[tuple[str, str, dict[str, Any]]], args: argparse.Namespace) -> dict[str, list[dict]]:
    """Run every configuration and seed (resumable); returns ``label -> [{seed, message}]`` of
    the runs whose training loss became non-finite (the harness stops them: no result file)."""
    import metabench
    from metabench.harness import run
    from metabench.harness.train import NonFiniteLossError

    env = metabench.make(args.env)
    diverged: dict[str, list[dict]] = {}
    for label, lid, overrides in configs:
        learner = metabench.make_learner(lid, env, **overrides)
        mb = learner.config.meta_batch
        steps = max(1, args.tasks // mb)
        val_every = max(1, args.val_every_tasks // mb)
        for seed in seeds_of(args.seeds):
            if args.plot_only:
                continue
            print(f"== {label} seed {seed}: {steps} steps x {mb} tasks", flush=True)
            try:
                run(env, lid, steps=steps, seed=seed, out_dir=args.out, val_every=val_every, val_tasks=args.val_tasks,
                    checkpoint_every=max(1, steps // 4), resume=True, overrides=overrides,
                    progress=not args.no_progress)
            except NonFiniteLossError as e:  # seed 003 §3.5.1: TURTLE's stability falls as T grows
                print(f"   diverged: {e}", flush=True)
                diverged.setdefault(label, []).append({"seed": seed, "message": str(e)})
    return diverged


def collect(configs: list[tuple[str, str, dict[str, Any]]], args: argparse.Namespace) -> dict[str, list[dict]]:
    """The result records of the configurations (by learner id, config and steps) under ``out``."""
    import metabench

    env = metabench.make(args.env)
    wanted = {}
    for label, lid, overrides in configs:
        c = metabench.make_learner(lid, env, **overrides).config
        wanted[label] = (lid, c, max(1, args.tasks // c.meta_batch))
    found: dict[str, list[dict]] = {}
    seeds = set(seeds_of(args.seeds))
    for f in sorted(Path(args.out, "results").glob(f"{env.spec.id}__*.json")):
        r = json.loads(f.read_text())
        for label, (lid, cfg, steps) in wanted.items():
            if (r["learner"]["id"] == lid and cfg.matches(r["learner"]["config"]) and r["run"]["steps"] == steps
                    and r["seed"] in seeds):
                found.setdefault(label, []).append(r)
    return found


def summarise(found: dict[str, list[dict]]) -> dict[str, Any]:
    table = {}
    for label, recs in found.items():
        finals = [r["metrics"][0]["mean"] for r in recs]
        med, lo, hi = median_ci(finals)
        curves = np.array([r["curves"][0]["mean"] for r in recs])
        table[label] = {"runs": len(recs), "seeds": sorted(r["seed"] for r in recs), "median": med, "ci95": [lo, hi],
                        "final_mse": finals, "median_curve": np.median(curves, 0).tolist(),
                        "adaptation_steps": recs[0]["metrics"][0]["adaptation_step"],
                        "code": sorted({str(r["code"].get("git_revision", "?")) for r in recs})}
    return table


def plot(table: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(table)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 3.6))
    nan = float("nan")
    med = [table[k]["median"] if table[k]["runs"] else nan for k in labels]
    err = np.array([[table[k]["median"] - table[k]["ci95"][0], table[k]["ci95"][1] - table[k]["median"]]
                    if table[k]["runs"] else [0.0, 0.0] for k in labels]).T
    ax.bar(range(len(labels)), med, color="#9ecae1", yerr=err, capsize=4)
    for i, k in enumerate(labels):
        ax.scatter([i] * len(table[k]["final_mse"]), table[k]["final_mse"], s=10, color="k", zorder=3)
    for i, k in enumerate(labels):
        if table[k].get("diverged"):  # x in data, y in axes coordinates: half way up the plot
            ax.text(i, 0.5, f"{len(table[k]['diverged'])} diverged\n(NaN loss)", ha="center", va="center",
                    fontsize=7, color="r", transform=ax.get_xaxis_transform())
    ax.set_xticks(range(len(labels)), [f"{k}\n(n={table[k]['runs']})" for k in labels], fontsize=8,
                  rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center")
    finite = [v for k in labels for v in table[k]["final_mse"]]
    if finite and max(finite) / max(min(finite), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_ylabel("meta-test MSE (600 tasks)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figure", choices=["3.3", "3.2"], default="3.3")
    ap.add_argument("--env", default="sinusoid-5s")
    ap.add_argument("--learners", default="maml,meta-lstm,turtle")
    ap.add_argument("--turtle-steps", default="1,5")
    ap.add_argument("--turtle-layers", default="1,3,5")
    ap.add_argument("--tasks", type=int, default=70_000, help="training tasks per run (seed 003: 70K)")
    ap.add_argument("--val-every-tasks", type=int, default=2_500)
    ap.add_argument("--val-tasks", type=int, default=100)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--out", default="leaderboard")
    ap.add_argument("--plot", default=None, help="PNG path (default leaderboard/plots/seed003_fig<N>_sinusoid.png)")
    ap.add_argument("--summary", default=None, help="JSON path (default benchmarks/results/seed003_fig<N>_sinusoid.json)")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    tag = args.figure.replace(".", "")
    configs = configurations(args.figure, args)
    diverged = run_all(configs, args)
    summary = Path(args.summary or f"benchmarks/results/seed003_fig{tag}_sinusoid.json")
    if summary.exists():  # diverged runs leave no result file: keep what earlier invocations saw
        old = json.loads(summary.read_text()).get("rows", {})
        for label, row in old.items():
            for d in row.get("diverged", []):
                if d["seed"] in seeds_of(args.seeds) and all(x["seed"] != d["seed"] for x in diverged.get(label, [])):
                    diverged.setdefault(label, []).append(d)
    found = collect(configs, args)
    table = summarise(found)
    for label, _, _ in configs:  # configuration order; a label with only diverged runs still gets a row
        if label in diverged:
            done = {r["seed"] for r in found.get(label, [])}
            table.setdefault(label, {"runs": 0, "seeds": [], "median": None, "ci95": [None, None], "final_mse": []})
            table[label]["diverged"] = sorted((d for d in diverged[label] if d["seed"] not in done),
                                              key=lambda d: d["seed"])
    table = {label: table[label] for label, _, _ in configs if label in table}
    for label, row in table.items():
        if not row["runs"]:
            print(f"{label:<24} runs 0  diverged {len(row.get('diverged', []))}")
            continue
        print(f"{label:<24} runs {row['runs']}  median MSE {row['median']:.4f}  95% CI [{row['ci95'][0]:.4f}, "
              f"{row['ci95'][1]:.4f}]" + (f"  diverged {len(row['diverged'])}" if row.get("diverged") else ""))
    from metabench.atomic import atomic_write_json

    atomic_write_json(summary, {"figure": args.figure, "env": args.env, "tasks_per_run": args.tasks,
                                "val_every_tasks": args.val_every_tasks, "val_tasks": args.val_tasks,
                                "ci": "order-statistic CI of the median over runs, coverage >= 95 %",
                                "diverged": "runs whose training loss became non-finite (stopped by the harness, "
                                            "no result file), per row",
                                "rows": table})
    plot(table, Path(args.plot or f"leaderboard/plots/seed003_fig{tag}_sinusoid.png"),
         f"seed 003 Fig. {args.figure} on {args.env}: median over runs, 95% CI; {args.tasks} training tasks per run")


if __name__ == "__main__":
    main()
