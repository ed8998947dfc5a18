"""Leaderboard rendering over 1,000 generated result files (issue 27: target < 10 s).

Generates ``--files`` schema-1.1 result files in a temporary leaderboard directory from the
committed results (one template per env in ``leaderboard/results``): about half of them canonical
runs (the env's canonical config hash, 3-6 seeds, per-task values, so every row gets its
stratified bootstrap and paired tie tests), the rest experiments with other config hashes.
Then times ``metabench.leaderboard.regenerate`` end to end (scan and validate every file,
compute the canonical table by building every env and learner -- the first render; later
ones read it from ``canonical.json`` -- statistics, pages): cold (an empty ``.cache``: every
file validated, every plot drawn) without and with the PNG plots, warm (nothing changed:
memoised validation and plots, ``metabench.leaderboard.memo``) and after one new result file,
``--repeats`` times each (the best is reported, wall and CPU seconds: the machine is shared). Writes
``benchmarks/results/leaderboard_render.json`` atomically. Usage::

    python benchmarks/bench_leaderboard.py [--files 1000] [--repeats 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _templates() -> dict[str, dict[str, Any]]:
    from metabench.leaderboard.store import scan_results

    good, _ = scan_results(ROOT / "leaderboard" / "results")
    out: dict[str, dict[str, Any]] = {}
    for _, r in good:
        out.setdefault(r["env"]["id"], r)
    return out


def generate(directory: Path, n_files: int, rng: np.random.Generator) -> dict[str, int]:
    """Write ``n_files`` results under ``directory/results``; returns counts by kind."""
    from metabench.harness.per_task import encode_per_task
    from metabench.leaderboard.canonical import resolve_canonical

    templates = _templates()
    table, _ = resolve_canonical(list(templates), None)
    envs = sorted(e for e in templates if any(k[0] == e for k in table))  # envs with canonical learners
    results = directory / "results"
    results.mkdir(parents=True)
    counts = {"canonical": 0, "experiment": 0}
    i = 0
    while i < n_files:
        env_id = envs[int(rng.integers(len(envs)))]
        t = templates[env_id]
        learners = [lid for (e, lid) in table if e == env_id]
        lid = learners[int(rng.integers(len(learners)))]
        canonical = rng.random() < 0.35
        chash = table[(env_id, lid)].config_hash if canonical else hashlib.sha256(f"{i}".encode()).hexdigest()
        seeds = range(int(rng.integers(3, 7))) if canonical else [int(rng.integers(0, 5))]
        m0 = t["metrics"][0]
        n_tasks = int(m0["n_tasks"])
        centre = m0["mean"] + rng.normal(0, abs(m0["mean"]) * 0.05 + 1e-3)
        for s in seeds:
            if i >= n_files:
                break
            spread = max(float(m0.get("std", 0.1)), 1e-3)
            vals = rng.normal(centre, spread, n_tasks)
            if m0["name"] == "accuracy":
                vals = np.clip(np.round(vals * 25) / 25, 0, 1)
            r = json.loads(json.dumps(t))
            block = encode_per_task(vals, metric=m0["name"], adaptation_step=m0.get("adaptation_step", 0))
            v = np.asarray(block["values"])
            r.update(schema_version="1.1", per_task=block, config_hash=chash, seed=int(s))
            r["learner"]["id"] = lid
            r["metrics"][0].update(mean=float(v.mean()), std=float(v.std()), ci95=float(1.96 * v.std() / np.sqrt(v.size)))
            r["name"] = f"{env_id}__{lid}__{chash[:8]}__s{s}"
            path = results / f"{r['name']}.json"
            if path.exists():
                continue
            path.write_text(json.dumps(r, indent=2, sort_keys=True) + "\n")
            counts["canonical" if canonical else "experiment"] += 1
            i += 1
    return counts


#: renders timed: with an empty ``.cache`` (every file validated, every plot drawn), then
#: again with nothing changed, then after one new result file; without and with plots
KINDS = ("cold_no_plots", "cold_with_plots", "warm_with_plots", "one_result_added")


def time_render(directory: Path, plots: bool) -> tuple[float, int]:
    from metabench.leaderboard import regenerate

    t0, c0 = time.perf_counter(), time.process_time()
    readme = regenerate(directory, plots=plots, report=None)
    return time.perf_counter() - t0, time.process_time() - c0, len(readme.read_text().splitlines())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "leaderboard_render.json"))
    args = p.parse_args(argv)
    from metabench.atomic import atomic_write_json
    from metabench.harness.provenance import code_version, host_info

    with tempfile.TemporaryDirectory(prefix="bench_leaderboard_") as tmp:
        directory = Path(tmp)
        counts = generate(directory, args.files, np.random.default_rng(args.seed))
        runs: dict[str, list[float]] = {k: [] for k in KINDS}
        cpu: dict[str, list[float]] = {k: [] for k in KINDS}
        lines = 0
        # the first render computes the canonical table (builds every env and learner) and caches it
        first_wall, first_cpu, _ = time_render(directory, False)
        print(f"first (canonical table computed): {first_wall:.2f} s, {first_cpu:.2f} s CPU", flush=True)
        template = next(iter(sorted((directory / "results").glob("*.json"))))
        for rep in range(args.repeats):
            for key in KINDS:
                if key.startswith("cold"):
                    shutil.rmtree(directory / ".cache", ignore_errors=True)
                    shutil.rmtree(directory / "plots", ignore_errors=True)
                if key == "one_result_added":
                    rec = json.loads(template.read_text())
                    rec["seed"] = 10_000 + rep
                    rec["name"] = rec["name"].rsplit("__s", 1)[0] + f"__s{rec['seed']}"
                    (directory / "results" / f"{rec['name']}.json").write_text(json.dumps(rec, indent=2, sort_keys=True))
                seconds, cpu_s, lines = time_render(directory, "no_plots" not in key)
                runs[key].append(seconds)
                cpu[key].append(cpu_s)
                print(f"{key}: {seconds:.2f} s, {cpu_s:.2f} s CPU", flush=True)
        pages = len(list((directory / "experiments").glob("*.md")))
    out = {
        "benchmark": "leaderboard render (metabench.leaderboard.regenerate)",
        "files": args.files, "generated": counts, "repeats": args.repeats, "seed": args.seed,
        "first_render_s": first_wall, "first_render_cpu_s": first_cpu,
        "seconds_best": {k: min(v) for k, v in runs.items()}, "seconds_all": runs,
        "cpu_seconds_best": {k: min(v) for k, v in cpu.items()},
        "target_s": 10.0, "readme_lines": lines, "experiments_pages": pages,
        "load_average_1m": os.getloadavg()[0],
        "machine": {**host_info(), "python": platform.python_version()},
        "code": code_version(), "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(args.out, out)
    print(json.dumps(out["seconds_best"]), f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
