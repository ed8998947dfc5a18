"""Where does a MAML-RL checkpoint's adapted return come from? (the probes of ``docs/results.md``)

    python benchmarks/diagnose_rl_adaptation.py ENV_ID RUN_OUT [--learner maml] [--set key=value ...]
        [--finn-goals] [--split test|val]

``RUN_OUT`` is the ``--out`` of a ``metabench run`` (its ``runs/ENV*/checkpoint.npz`` holds the
best-validation state); ``--set`` repeats that run's learner overrides (or changes an
evaluation setting, e.g. ``eval_inner_lr``). On the env's frozen test tasks (``--split
val``: the validation tasks, the ones to choose settings on), with the harness's per-task
keys, it prints for every adaptation step: the mean return, the share of episodes that
end before the horizon (the goal reached), the mean episode length and, for Nav2d, the
share solved by seed 002's criterion (return > 330 or fewer than 38 steps); then the
policy's log-std, the return of the adapted policies' mean actions, and (point-nav) the tasks with the lowest success rate (goal, distance, success).
``--finn-goals`` (point-nav) also evaluates on Finn et al.'s 40 test goals
(``np.random.seed(1); np.random.uniform(-0.5, 0.5, (40, 2))``, as ``test_maml_point.py``)
and on the one goal that script's committed version keeps (``goals[6]``).
"""

from __future__ import annotations

import argparse
import glob
from typing import Any

import jax
import numpy as np

import metabench
from metabench.baselines._policy import policy_mean
from metabench.baselines.maml_rl import mean_episode_return
from metabench.cli import parse_assignments
from metabench.harness.checkpoint import load_checkpoint
from metabench.harness.evaluate import eval_key
from metabench.rollout import rollout


def load_best(learner: Any, out: str, env_id: str) -> Any:
    paths = glob.glob(f"{out}/runs/{env_id}*/checkpoint.npz")
    if len(paths) != 1:
        raise SystemExit(f"expected one checkpoint under {out}/runs/{env_id}*/, found {paths}")
    state = learner.init(jax.random.key(0))
    trees, _ = load_checkpoint(paths[0], {"state": state, "best": state})
    return trees["best"]


def per_step_table(learner: Any, state: Any, tasks: Any, keys: jax.Array, nav2d: bool) -> np.ndarray:
    """Prints the per-step rows; returns the per-task success rate after the last step."""
    traj = jax.jit(jax.vmap(learner.adaptation_trajectories, in_axes=(None, 0, 0)))(state, tasks, keys)
    mask = np.asarray(traj.mask)  # [N, S+1, E, T]
    kept = mask[..., 0] > 0  # episodes inside the step budget
    ret = (np.asarray(traj.rewards) * mask).sum(-1)
    length = mask.sum(-1)
    horizon = learner.config.horizon
    ended = (length < horizon) & kept
    curve = np.asarray(mean_episode_return(traj)).mean(0)  # the harness's metric, per step
    for s in range(mask.shape[1]):
        k = kept[:, s]
        row = (f"step {s}: mean return {curve[s]:9.2f}  episodes/task {k.sum() / len(k):6.1f}  "
               f"goal reached {ended[:, s][k].mean():.3f}  mean length {length[:, s][k].mean():5.1f}")
        if nav2d:
            solved = ((ret[:, s] > 330) | (ended[:, s] & (length[:, s] < 38)))[k]
            row += f"  solved (seed 002) {solved.mean():.3f}"
        print(row)
    s = mask.shape[1] - 1
    return np.array([ended[i, s].sum() / max(kept[i, s].sum(), 1) for i in range(mask.shape[0])])


def mean_action_return(learner: Any, env: Any, state: Any, tasks: Any, keys: jax.Array) -> None:
    adapted = jax.jit(jax.vmap(learner.adapt, in_axes=(None, 0, 0)))(state, tasks, keys)
    apply = lambda p, obs, key: policy_mean(p, obs)  # noqa: E731
    horizon = learner.config.horizon
    traj = jax.jit(jax.vmap(lambda p, t, k: rollout(env, apply, p, t, k, 1, horizon, learner.action_map)))(
        adapted, tasks, keys)
    mask = np.asarray(traj.mask)
    ret = (np.asarray(traj.rewards) * mask).sum(-1)
    print(f"mean action after {learner.config.eval_steps} steps: return {ret.mean():9.2f}  "
          f"goal reached {(mask.sum(-1) < horizon).mean():.3f}")


def finn_goals(learner: Any, state: Any, tasks: Any) -> None:
    legacy = np.random.RandomState(1)  # == np.random.seed(1) + np.random.uniform, as their script
    goals = legacy.uniform(-0.5, 0.5, size=(40, 2)).astype(np.float32)
    curve = jax.jit(jax.vmap(learner.eval_curve, in_axes=(None, 0, 0)))
    keys = jax.random.split(jax.random.key(7), 40)
    for name, gs in (("Finn et al.'s 40 test goals", goals), ("their committed script's goals[6]", np.repeat(goals[6:7], 40, 0))):
        t = type(tasks)(goal=jax.numpy.asarray(gs))
        c = np.asarray(curve(state, t, keys))
        ci = 1.96 * c.std(0) / np.sqrt(len(c))
        print(f"{name}: " + " / ".join(f"{m:.2f} ± {e:.2f}" for m, e in zip(c.mean(0), ci)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("env")
    ap.add_argument("out")
    ap.add_argument("--learner", default="maml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--finn-goals", action="store_true")
    ap.add_argument("--split", default="test", help="frozen task set to probe on (val: for choosing settings)")
    args = ap.parse_args()
    if args.finn_goals and not args.env.startswith("point-nav"):
        ap.error(f"--finn-goals is for point-nav (Finn et al.'s test goals); got {args.env}")
    env = metabench.make(args.env)
    learner = metabench.make_learner(args.learner, env, **parse_assignments(args.set, "--set", literal=False))
    state = load_best(learner, args.out, args.env)
    n = env.num_eval_tasks
    tasks = env.eval_tasks(args.split, 0, n)
    keys = jax.random.split(eval_key(env, args.split), n)
    print(f"{args.env}: {n} {args.split} tasks, log_std {np.asarray(state.params['log_std']).round(3)}")
    success = per_step_table(learner, state, tasks, keys, nav2d=args.env.startswith("nav2d"))
    mean_action_return(learner, env, state, tasks, keys)
    goal = getattr(tasks, "goal", None)
    if goal is not None and np.asarray(goal).shape[-1] == 2 and not args.env.startswith("nav2d"):
        dist = np.linalg.norm(np.asarray(goal), axis=-1)
        print(f"corr(|goal|, success) {np.corrcoef(dist, success)[0, 1]:.2f}; tasks with success < 0.5: "
              f"{(success < 0.5).sum()}, >= 0.9: {(success >= 0.9).sum()}")
        for i in np.argsort(success)[:5]:
            print(f"  task {i}: goal {np.asarray(goal)[i].round(3)}, |goal| {dist[i]:.2f}, success {success[i]:.2f}")
    if args.finn_goals:
        finn_goals(learner, state, tasks)


if __name__ == "__main__":
    main()
