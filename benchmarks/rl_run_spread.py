"""How far can one MAML-RL run land from another? The spread a published single run is compared with.

    python benchmarks/rl_run_spread.py ENV_ID RUN_OUT [RUN_OUT ...] [--learner maml] [--set k=v ...]
        [--pool 1000] [--draws 100000] [--tasks 40] [--json PATH] [--plot PATH]

A published curve (Finn et al. 2017) is one training run evaluated on one set of 40 test
tasks. Two things move such a number: the training seed and which 40 tasks were drawn
(each with its own adaptation noise). Every ``RUN_OUT`` is the ``--out`` of ``metabench
run``; each ``runs/ENV*/checkpoint.npz`` under it is one trained seed (its best-validation
state, the one the harness tested). The script

1. evaluates every seed's state on a fixed pool of ``--pool`` fresh tasks of the test
   distribution (``env.sample_tasks`` from a fixed key) by the harness's evaluation
   (``Evaluator.curves_of``: the adaptation protocol of a run), giving per-task curves
   ``[seeds, pool, S+1]``;
2. simulates ``--draws`` published-style results: a seed drawn uniformly, ``--tasks`` tasks
   drawn from the pool without replacement, their mean curve;
3. prints, per adaptation step, the 2.5 / 50 / 97.5 % quantiles of that distribution and
   where the published curve (``metabench.leaderboard.published``) falls: the share of
   simulated runs at least as good, at each step and at all steps from 1 on together;
4. (point-nav) every seed on Finn et al.'s own 40 test goals (``np.random.seed(1)``, as
   their ``test_maml_point.py``), i.e. the very task set of the published curve.

It is a measurement of trained states, not a way to choose settings (no training, no
selection). ``--json`` writes the numbers, ``--plot`` a figure of the simulated
distribution per step with the published value marked.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from diagnose_rl_adaptation import best_state, finn_goal_array

import metabench
import metabench.baselines  # noqa: F401
from metabench.cli import parse_assignments
from metabench.harness import Evaluator
from metabench.atomic import atomic_write_json
from metabench.harness.provenance import code_version, host_info, package_versions
from metabench.leaderboard.published import PUBLISHED_RL

POOL_KEY = 20261130  # the fresh task pool: env.sample_tasks(key(POOL_KEY), pool, "test")


def checkpoints(outs: list[str], env_id: str) -> list[str]:
    paths = sorted(p for out in outs for p in glob.glob(f"{out}/runs/{env_id}*/checkpoint.npz"))
    if not paths:
        raise SystemExit(f"no RUN_OUT/runs/{env_id}*/checkpoint.npz for RUN_OUT in {', '.join(outs)}: "
                         "pass the --out directories of metabench run")
    return paths


def simulate(curves: np.ndarray, n_tasks: int, draws: int, rng: np.random.Generator, block: int = 10_000) -> np.ndarray:
    """``[draws, S+1]`` mean curves of one random seed on ``n_tasks`` random pool tasks.

    Each draw's ``n_tasks`` distinct pool indices are the first of an argsort of uniforms,
    ``block`` draws at a time (the same stream of numbers as one ``[draws, pool]`` array).
    """
    n_seeds, pool, _ = curves.shape
    seeds = rng.integers(0, n_seeds, size=draws)
    out = []
    for start in range(0, draws, block):
        rows = min(block, draws - start)
        idx = np.argsort(rng.random((rows, pool)), axis=1)[:, :n_tasks]
        out.append(curves[seeds[start:start + rows, None], idx].mean(axis=1))
    return np.concatenate(out)


def share_at_least(sim: np.ndarray, ref: list[float]) -> tuple[list[float], float]:
    """Share of simulated runs at least as good as ``ref`` per step, and at every step >= 1 together."""
    ref_a = np.asarray(ref)
    k = len(ref_a)
    ge = sim[:, :k] >= ref_a
    return [float(x) for x in ge.mean(0)], float(ge[:, 1:].all(1).mean())


def report(name: str, sim: np.ndarray, ref: list[float] | None) -> dict[str, Any]:
    q = np.quantile(sim, [0.025, 0.5, 0.975], axis=0)
    print(f"\n{name}: {len(sim)} simulated runs")
    for s in range(sim.shape[1]):
        print(f"  step {s}: 2.5 % {q[0, s]:8.2f}   median {q[1, s]:8.2f}   97.5 % {q[2, s]:8.2f}")
    out: dict[str, Any] = {"quantiles": {"2.5": q[0].tolist(), "50": q[1].tolist(), "97.5": q[2].tolist()}}
    if ref is not None:
        per_step, joint = share_at_least(sim, ref)
        inside = [bool(q[0, s] <= r <= q[2, s]) for s, r in enumerate(ref)]
        for s, r in enumerate(ref):
            print(f"  published step {s} {r:7.2f}: {100 * per_step[s]:5.1f} % of runs at least as good; "
                  f"inside the central 95 %: {inside[s]}")
        print(f"  at least as good as published at every step from 1 on: {100 * joint:.1f} %")
        out.update(share_at_least_published=per_step, share_at_least_published_all_steps_from_1=joint,
                   published_inside_central_95=inside)
    return out


def plot(path: str, sims: dict[str, np.ndarray], ref: list[float] | None, env_id: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = next(iter(sims.values())).shape[1]
    fig, axes = plt.subplots(1, steps, figsize=(3.2 * steps, 2.8))
    for s, ax in enumerate(np.atleast_1d(axes)):
        for name, sim in sims.items():
            ax.hist(sim[:, s], bins=60, histtype="step", density=True, label=name)
        if ref is not None and s < len(ref):
            ax.axvline(ref[s], color="k", ls="--", label="published")
        ax.set_title(f"after {s} step{'s' if s != 1 else ''}")
        ax.set_xlabel("mean return over 40 tasks")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{env_id}: one run = one training seed x 40 test tasks (simulated)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("env")
    ap.add_argument("outs", nargs="+", metavar="RUN_OUT")
    ap.add_argument("--learner", default="maml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--pool", type=int, default=1000, help="fresh test-distribution tasks per seed")
    ap.add_argument("--draws", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=40, help="tasks per simulated run (the published 40)")
    ap.add_argument("--exclude-below", type=float, default=None, metavar="R",
                    help="also report without seeds whose pool mean before adaptation is below R (failed trainings)")
    ap.add_argument("--json")
    ap.add_argument("--plot")
    args = ap.parse_args()
    if not 0 < args.tasks <= args.pool or args.draws < 1:
        ap.error(f"need 0 < --tasks <= --pool and --draws >= 1; got tasks {args.tasks}, pool {args.pool}, "
                 f"draws {args.draws}")

    env = metabench.make(args.env)
    learner = metabench.make_learner(args.learner, env, **parse_assignments(args.set, "--set", literal=False))
    ref = PUBLISHED_RL.get(args.env.split("-v")[0], {}).get("maml")
    paths = checkpoints(args.outs, args.env)
    pool = env.sample_tasks(jax.random.key(POOL_KEY), args.pool, "test")
    pool_keys = jax.random.split(jax.random.fold_in(jax.random.key(POOL_KEY), 1), args.pool)
    point_nav = args.env.startswith("point-nav")
    if point_nav:
        finn = type(pool)(goal=jax.numpy.asarray(finn_goal_array()))
        finn_keys = jax.random.split(jax.random.key(7), 40)  # as diagnose_rl_adaptation.py --finn-goals

    evaluator = Evaluator(learner, env)  # the harness's evaluation path, 50 tasks per call
    t0 = time.perf_counter()
    curves, finn_curves, seeds = [], [], []
    for p in paths:
        state = best_state(learner, p)
        c = evaluator.curves_of(state, pool, pool_keys)
        curves.append(c)
        seeds.append(p.split("__s")[-1].split("/")[0])
        line = f"{p}: pool mean " + " / ".join(f"{x:.2f}" for x in c.mean(0))
        if point_nav:
            f = evaluator.curves_of(state, finn, finn_keys)
            finn_curves.append(f.mean(0))
            line += "   Finn et al.'s 40 goals " + " / ".join(f"{x:.2f}" for x in f.mean(0))
        print(line, flush=True)
    curves_a = np.stack(curves)
    wall = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    result: dict[str, Any] = {
        "env": args.env, "learner": args.learner, "overrides": args.set, "checkpoints": paths, "seeds": seeds,
        "pool": args.pool, "pool_key": POOL_KEY, "tasks_per_run": args.tasks, "draws": args.draws,
        "published": ref, "pool_mean_per_seed": curves_a.mean(1).tolist(),
        "wall_s": round(wall, 1), "code": code_version(), "host": host_info(), "versions": package_versions(),
    }
    sims = {"all seeds": simulate(curves_a, args.tasks, args.draws, rng)}
    result["all_seeds"] = report(f"all {len(paths)} seeds", sims["all seeds"], ref)
    if args.exclude_below is not None:
        keep = curves_a.mean(1)[:, 0] >= args.exclude_below
        name = f"{int(keep.sum())} seeds with pool mean before adaptation >= {args.exclude_below}"
        sims["trained seeds"] = simulate(curves_a[keep], args.tasks, args.draws, rng)
        result["trained_seeds"] = {"kept": [s for s, k in zip(seeds, keep) if k], **report(name, sims["trained seeds"], ref)}
    if point_nav:
        fa = np.stack(finn_curves)
        result["finn_goals_per_seed"] = fa.tolist()
        print("\nFinn et al.'s 40 test goals, per seed (seed mean, sd):")
        print("  mean " + " / ".join(f"{x:.2f}" for x in fa.mean(0)) + "   sd " + " / ".join(f"{x:.2f}" for x in fa.std(0, ddof=1)))
        if ref is not None:
            better = (fa[:, 1:len(ref)] >= np.asarray(ref[1:])).all(1)
            print(f"  seeds at least as good as published at every step from 1 on: {int(better.sum())} of {len(fa)}")
    if args.json:
        atomic_write_json(Path(args.json), result, indent=1)
    if args.plot:
        plot(args.plot, sims, ref, args.env)
    print(f"\n{wall:.0f} s of evaluation")


if __name__ == "__main__":
    main()
