"""Seed 000 Table II in our runs: ES-ProtoNet test accuracy against (alpha, sigma), from result JSON.

    python benchmarks/report_es_sweep.py [--env omniglot-lite-5w5s-v0] [--steps 300]
    python benchmarks/report_es_sweep.py --population 1024 --train-ways 10 --name es_sweep_pop1024

Reads every ``es-protonet`` result of ``--env`` in ``leaderboard/results/`` trained for
``--steps`` steps whose overrides set ``alpha`` and ``sigma`` (the sweep of
``metabench run ... --set alpha=A --set sigma=S``), at total population ``--population``
and training way ``--train-ways`` (default: the env's own), and writes
``benchmarks/results/NAME.json`` (a row per setting: test accuracy ± CI, validation
curve, the harness's collapse record, the result file) and
``leaderboard/plots/NAME.png`` (validation curves and test accuracy).
No number is typed in here: everything comes from the result files.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: the overrides a Table II sweep run may set; runs that change anything else are left out
SWEEP_KEYS = {"alpha", "sigma", "channels", "population", "candidate_batch"}  # candidate_batch: batching only


def _train_ways(rec: dict[str, Any]) -> int | None:
    """The training way when the run trained on another way than it tests (``--train-env-set ways=W``)."""
    train_env = rec["run"].get("train_env")
    return int(train_env["kwargs"]["ways"]) if train_env and "ways" in train_env.get("overrides", []) else None


def sweep_rows(results: Path, env: str, steps: int, population: int = 64,
               train_ways: int | None = None) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(results.glob(f"{env}__es-protonet__*.json")):
        rec = json.loads(path.read_text())
        ov = rec["learner"]["overrides"]
        if rec["run"]["steps"] != steps or "alpha" not in ov or "sigma" not in ov:
            continue
        cfg = rec["learner"]["config"]
        if cfg.get("population_total", cfg["population"]) != population or _train_ways(rec) != train_ways:
            continue
        if set(ov) - SWEEP_KEYS:  # other options (antithetic, Adam, ...) are other experiments
            continue
        m = rec["metrics"][0]
        rows.append({
            "alpha": float(ov["alpha"]), "sigma": float(ov["sigma"]),
            "test_accuracy": m["mean"], "ci95": m["ci95"], "n_tasks": m["n_tasks"],
            "validation": [(h["step"], h["value"]) for h in rec["validation"]["history"]],
            "collapse": rec["train"].get("collapse"),
            "config": {k: rec["learner"]["config"][k] for k in ("channels", "population", "distance")},
            "train_ways": train_ways, "backend": rec["device"]["backend"],
            "chance": 1.0 / rec["env"]["spec"]["kwargs"]["ways"],
            "git_revision": rec["code"]["git_revision"], "result": str(path.relative_to(ROOT)),
        })
    return sorted(rows, key=lambda r: (r["alpha"], r["sigma"]))


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for r in rows:
        label = f"α={r['alpha']:g}, σ={r['sigma']:g}" + (" (collapse)" if (r["collapse"] or {}).get("detected") else "")
        s, v = zip(*r["validation"]) if r["validation"] else ((), ())
        a.plot(s, v, marker="o", label=label)
    a.set(xlabel="meta-training step", ylabel="validation accuracy", title="validation")
    a.legend(fontsize=8)
    names = [f"{r['alpha']:g}/{r['sigma']:g}" for r in rows]
    b.bar(names, [r["test_accuracy"] for r in rows], yerr=[r["ci95"] for r in rows], capsize=4)
    b.axhline(rows[0]["chance"], color="grey", linestyle="--", label="chance (collapse)")
    b.legend(fontsize=8)
    b.set(xlabel="α / σ", ylabel="test accuracy (600 tasks, 95% CI)", title="test", ylim=(0, 1))
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="omniglot-lite-5w5s-v0")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--population", type=int, default=64, help="total population of the sweep's runs")
    ap.add_argument("--train-ways", type=int, default=None, help="training way, if not the env's")
    ap.add_argument("--name", default="es_sweep", help="output stem under benchmarks/results and leaderboard/plots")
    ap.add_argument("--results", type=Path, default=ROOT / "leaderboard" / "results")
    args = ap.parse_args(argv)
    rows = sweep_rows(args.results, args.env, args.steps, args.population, args.train_ways)
    if not rows:
        raise SystemExit(f"no es-protonet results with alpha/sigma overrides, {args.steps} steps, population "
                         f"{args.population} and train way {args.train_ways or 'as tested'} for {args.env}")
    payload = {"benchmark": "es_alpha_sigma_sweep (seed 000 Table II)", "env": args.env, "steps": args.steps,
               "population": args.population, "train_ways": args.train_ways, "rows": rows}
    out = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, out)
    plot_name = "es_alpha_sigma_sweep" if args.name == "es_sweep" else args.name
    ways = f", train way {args.train_ways}" if args.train_ways else ""
    plot(rows, ROOT / "leaderboard" / "plots" / f"{plot_name}.png",
         f"ES-ProtoNet α/σ sweep, {args.env}, population {args.population}{ways}, {args.steps} steps")
    for r in rows:
        flag = " collapse" if (r["collapse"] or {}).get("detected") else ""
        print(f"alpha={r['alpha']:g} sigma={r['sigma']:g}: {100 * r['test_accuracy']:.2f} ± {100 * r['ci95']:.2f} %{flag}")


if __name__ == "__main__":
    main()
