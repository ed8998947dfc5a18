"""Reduced reproductions of seed 002's DMAML experiments (sections 6.1, 6.3-6.6) as real harness runs.

Every configuration is one ``metabench run`` (the CLI, niced, one at a time), writing its
result JSON to ``leaderboard/results``. ``benchmarks/results/dmaml_repro_manifest.json``
maps each experiment's configuration to its result files, so a rerun skips what is done
(``--force`` reruns). ``benchmarks/plot_dmaml.py`` reads the manifest and draws the curves.

    python benchmarks/repro_dmaml.py --groups sine-impl sine-beta ...   # or: --groups all
    python benchmarks/repro_dmaml.py --list
    python benchmarks/repro_dmaml.py --groups omni-beta --labels 'w=1 ' --seeds 0   # a subset

The reductions against the thesis (chosen for a shared 2-core CPU; docs/results.md):
sinusoid 1,000 runs per configuration (the thesis plots up to ~1,000-1,500), workers
1/5/30, scaling ratios 4 and 16; Omniglot on ``omniglot-lite-5w1s`` (8 of 50 alphabets)
with a Conv-4 of 16 channels (thesis 64), 8 tasks per epoch (thesis 32), 300 runs,
workers 1/5; validation on 100 (sinusoid) / 50 (Omniglot) frozen tasks, test on the
env's 600. Everything first order (``dmaml-fo`` / ``maml-fo``, section 5.3).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "benchmarks" / "results" / "dmaml_repro_manifest.json"
SEEDS = (0, 1, 2)

#: Table 5.3 (sinusoid): k = 10 support / 10 query samples, alpha 0.01, 10 tasks, 1 epoch,
#: 1 gradient step, 1 validation step
SINE = {"env": "sinusoid-10s", "steps": 1000, "val_every": 50, "val_tasks": 100,
        "set": {"tasks": 10, "eval_steps": 1, "inner_lr": 0.01}}
#: Table 5.1 (Omniglot): 1 support / 1 query, alpha 0.4, 1 gradient step, 3 validation steps;
#: reduced: 16 channels, 8 tasks per epoch
OMNI = {"env": "omniglot-lite-5w1s", "env_set": {"queries": 1}, "steps": 300, "val_every": 50, "val_tasks": 50,
        "set": {"tasks": 8, "channels": 16, "eval_steps": 3, "inner_lr": 0.4}}
#: nav2d-easy with MAML-RL's Nav2d defaults (linear policy, PPO outer step); 4 workers x 5 tasks
#: = MAML-RL's 20 tasks per meta-step
NAV = {"env": "nav2d-easy", "steps": 300, "val_every": 50, "val_tasks": 20, "set": {"tasks": 5, "workers": 4}}


def cfg(base: dict[str, Any], learner: str = "dmaml-fo", **sets: Any) -> dict[str, Any]:
    return {**base, "learner": learner, "set": {**base["set"], **sets}}


def groups() -> dict[str, dict[str, dict[str, Any]]]:
    """Experiment group -> {label -> configuration}."""
    g: dict[str, dict[str, dict[str, Any]]] = {}
    # 6.1 implementation test: MAML vs DMAML with one worker, beta = 0.001
    g["sine-impl"] = {"maml": cfg({**SINE, "set": {k: v for k, v in SINE["set"].items() if k != "tasks"}},
                                  "maml-fo", meta_batch=10, meta_lr=0.001),
                      "dmaml w=1": cfg(SINE, workers=1, meta_lr=0.001)}
    g["omni-impl"] = {"maml": cfg({**OMNI, "set": {k: v for k, v in OMNI["set"].items() if k != "tasks"}},
                                  "maml-fo", meta_batch=8, meta_lr=0.001),
                      "dmaml w=1": cfg(OMNI, workers=1, meta_lr=0.001)}
    # 6.3 beta searches (Figures 6.9 / 6.10): 1 and 10 workers
    g["sine-beta"] = {f"w={w} beta={b}": cfg(SINE, workers=w, meta_lr=b)
                      for w in (1, 10) for b in (0.001, 0.005, 0.01, 0.1)}
    # 6.4 workers (Figure 6.14: 1, 5, 30; Figure 6.11 for Omniglot: 1, 5, ...)
    g["sine-workers"] = {f"w={w}": cfg(SINE, workers=w, meta_lr=0.01) for w in (1, 5, 30)}
    g["omni-workers"] = {f"w={w}": cfg(OMNI, workers=w, meta_lr=0.01) for w in (1, 5)}
    # 6.5 gradient steps (Figures 6.15 / 6.16, there on Omniglot): 1, 2, 3 inner steps, 1 and 10 workers
    g["sine-steps"] = {f"w={w} steps={s}": cfg(SINE, workers=w, meta_lr=0.01, inner_steps=s)
                       for w in (1, 10) for s in (1, 2, 3)}
    # 6.6 workers / epochs / tasks at equal seen tasks per run (Table 6.2), arithmetic mean, beta 0.001
    g["sine-scaling"] = {"base": cfg(SINE, workers=1, meta_lr=0.001)}
    for r in (4, 16):
        g["sine-scaling"][f"workers x{r}"] = cfg(SINE, workers=r, meta_lr=0.001)
        g["sine-scaling"][f"epochs x{r}"] = cfg(SINE, epochs=r, meta_lr=0.001)
        g["sine-scaling"][f"tasks x{r}"] = cfg(SINE, tasks=10 * r, meta_lr=0.001)
    # 6.6, Figures 6.22 (two parameters raised together, ratio 16) and 6.23 / 6.24 (the same
    # with the gradient sum, MAML's eq. 3.3 ``meta_reduce="sum"``, instead of the mean)
    g["sine-scaling-mixed"] = {"workers x4 epochs x4": cfg(SINE, workers=4, epochs=4, meta_lr=0.001),
                               "workers x4 tasks x4": cfg(SINE, workers=4, tasks=40, meta_lr=0.001)}
    g["sine-scaling-sum"] = {label: {**c, "set": {**c["set"], "meta_reduce": "sum"}}
                             for label, c in {**g["sine-scaling"], **g["sine-scaling-mixed"]}.items()}
    # 6.3 on Omniglot (Figures 6.5 / 6.6): beta for 1 and 10 workers
    g["omni-beta"] = {f"w={w} beta={b}": cfg(OMNI, workers=w, meta_lr=b)
                      for w in (1, 10) for b in (0.001, 0.005, 0.01, 0.1)}
    # 6.4 on Omniglot with many workers (Figures 6.11 / 6.12: 1, 5, 10, 30, 50)
    g["omni-workers-many"] = {f"w={w}": cfg(OMNI, workers=w, meta_lr=0.01) for w in (1, 5, 10, 30, 50)}
    g["sine-workers-many"] = {f"w={w}": cfg(SINE, workers=w, meta_lr=0.01) for w in (1, 5, 10, 30, 50)}
    # 6.5 gradient steps on Omniglot, as the thesis (Figures 6.15 / 6.16); one step is the default
    g["omni-steps"] = {f"w={w} steps={s}": cfg(OMNI, workers=w, meta_lr=0.01, **({"inner_steps": s} if s > 1 else {}))
                       for w in (1, 10) for s in (1, 2, 3)}
    # beyond the thesis: the generators on Nav2d (section 4.3 / 7 left it as future work)
    gens = ("plain", "loss-median", "loss-moving-average")
    g["nav-generators"] = {gen: cfg(NAV, generator=gen) for gen in gens}
    g["nav-generators"]["weighted g=0.5"] = cfg(NAV, generator="weighted", g=0.5)
    for env in ("nav2d-hard", "point-nav"):
        g[f"nav-generators-{env}"] = {gen: cfg({**NAV, "env": env}, generator=gen) for gen in gens}
    # every generator of section 4.3 on the supervised families, 5 workers (plain = 6.4's w=5)
    for name, base in (("sine", SINE), ("omni", OMNI)):
        g[f"{name}-generators"] = {gen: cfg(base, workers=5, meta_lr=0.01, generator=gen) for gen in gens}
        g[f"{name}-generators"]["plain"] = g[f"{name}-workers"]["w=5"]
        g[f"{name}-generators"]["weighted g=0.5"] = cfg(base, workers=5, meta_lr=0.01, generator="weighted", g=0.5)
    return g


def command(c: dict[str, Any], seed: int) -> list[str]:
    cmd = ["nice", "-n", "10", sys.executable, "-m", "metabench.cli", "run", "--env", c["env"], "--learner",
           c["learner"], "--steps", str(c["steps"]), "--seed", str(seed), "--val-every", str(c["val_every"]),
           "--val-tasks", str(c["val_tasks"]), "--no-progress", "--out", str(ROOT / "leaderboard")]
    for k, v in c["set"].items():
        cmd += ["--set", f"{k}={v}"]
    for k, v in c.get("env_set", {}).items():
        cmd += ["--env-set", f"{k}={v}"]
    return cmd


def key_of(c: dict[str, Any], seed: int) -> str:
    return json.dumps({**c, "seed": seed}, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", nargs="*", default=[])
    ap.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    ap.add_argument("--labels", default="", help="only the configurations whose label matches this regex")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    table = groups()
    if args.list:
        for name, cs in table.items():
            print(name, ", ".join(cs))
        return 0
    names = list(table) if args.groups == ["all"] else args.groups
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown groups {unknown}; choose from {', '.join(table)}")
    manifest: dict[str, Any] = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    env = {**os.environ, "METABENCH_DATA": os.environ.get("METABENCH_DATA", "/work/shared/data")}
    for name in names:
        for label, c in table[name].items():
            if args.labels and not re.search(args.labels, label):
                continue
            for seed in args.seeds:
                k = key_of(c, seed)
                if k in manifest and not args.force and (ROOT / manifest[k]["result"]).exists():
                    continue
                t0 = time.time()
                proc = subprocess.run(command(c, seed), env=env, capture_output=True, text=True, cwd=ROOT)
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{name} / {label} / seed {seed} failed")
                path = re.search(r"^result: (.+)$", proc.stdout, re.M).group(1).strip()  # type: ignore[union-attr]
                rel = str(Path(path).resolve().relative_to(ROOT))
                manifest[k] = {"group": name, "label": label, "seed": seed, "result": rel,
                               "command": " ".join(command(c, seed)[3:]), "wall_s": round(time.time() - t0, 1)}
                MANIFEST.parent.mkdir(parents=True, exist_ok=True)
                tmp = MANIFEST.with_suffix(".tmp")
                tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
                os.replace(tmp, MANIFEST)
                print(f"{name} | {label} | seed {seed}: {proc.stdout.strip().splitlines()[-2]} "
                      f"({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
