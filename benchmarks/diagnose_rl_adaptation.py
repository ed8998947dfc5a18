"""Where does a MAML-RL checkpoint's adapted return come from? (the probes of ``docs/results.md``)

    python benchmarks/diagnose_rl_adaptation.py ENV_ID RUN_OUT [--learner maml] [--set key=value ...]
        [--finn-goals] [--split test|val] [--log-std-shift D ...] [--state best|last]
        [--baseline-order fit-first|predict-first]

``RUN_OUT`` is the ``--out`` of a ``metabench run`` (its ``runs/ENV*/checkpoint.npz`` holds the
best-validation state); ``--set`` repeats that run's learner overrides (or changes an
evaluation setting, e.g. ``eval_inner_lr``). On the env's frozen test tasks (``--split
val``: the validation tasks, the ones to choose settings on), with the harness's per-task
keys, it prints for every adaptation step: the mean return, the share of episodes that
end before the horizon (the goal reached), the mean episode length and, for Nav2d, the
share solved by seed 002's criterion (return > 330 or fewer than 38 steps); then the
policy's log-std, the return of the adapted policies' mean actions, (Nav2d) how precisely the
unadapted policy's mean action walks to the goal from 100 down to 0.3 units, and (point-nav)
the tasks with the lowest success rate (goal, distance, success).
``--finn-goals`` (point-nav) also evaluates on Finn et al.'s 40 test goals
(``np.random.seed(1); np.random.uniform(-0.5, 0.5, (40, 2))``, as ``test_maml_point.py``)
and on the one goal that script's committed version keeps (``goals[6]``).
``--log-std-shift D`` (repeatable) also prints the adaptation curve with the meta-learned
log-std shifted by ``D`` before adaptation: how much the curve depends on the exploration
noise (a probe; on the test split it is not a way to choose a setting).
``--state last`` probes the checkpoint's last iterate instead of its best-validation state
(Finn et al. test the ``params.pkl`` of their training's ``snapshot_mode="last"``).
``--baseline-order predict-first`` also prints the adaptation curve when every adaptation
step's advantages use the linear baseline fitted on the previous step's batch (the first
step: none), as rllab's older ``BaseSampler.process_samples`` did (predict, then fit);
the harness, like the later version in Finn et al.'s repository, fits on the batch first.
"""

from __future__ import annotations

import argparse
import glob
from typing import Any

import jax
import numpy as np

import metabench
from metabench.baselines._policy import policy_mean, sample_action
from metabench.baselines._rl_baseline import baseline_weights, feature_dim
from metabench.baselines.maml_rl import mean_episode_return
from metabench.cli import parse_assignments
from metabench.harness.checkpoint import load_checkpoint
from metabench.harness.evaluate import eval_key
from metabench.rollout import rollout


def best_state(learner: Any, path: str, which: str = "best") -> Any:
    """The best-validation state stored in checkpoint ``path`` (the one the harness tested).

    ``which="last"``: the last iterate (the training state the checkpoint resumes from).
    """
    state = learner.init(jax.random.key(0))
    trees, _ = load_checkpoint(path, {"state": state, "best": state})
    return trees["best" if which == "best" else "state"]


def load_best(learner: Any, out: str, env_id: str, which: str = "best") -> Any:
    paths = glob.glob(f"{out}/runs/{env_id}*/checkpoint.npz")
    if len(paths) != 1:
        raise SystemExit(f"expected one checkpoint under {out}/runs/{env_id}*/, found {paths}")
    return best_state(learner, paths[0], which)


def predict_first_curve(learner: Any, env: Any, state: Any, task: Any, key: jax.Array) -> jax.Array:
    """``float32[S+1]``: the harness's adaptation curve, each step's advantages from the previous batch's baseline.

    The same keys, batches and step sizes as ``learner.eval_curve``; only the baseline
    differs (step 0: none, step ``s``: fitted on the batch of step ``s - 1``).
    """
    c = learner.config
    params, out = state.params, []
    weights = jax.numpy.zeros(feature_dim(env.observation_space.shape[0]), jax.numpy.float32)
    for s in range(c.eval_steps + 1):
        traj = learner.eval_batch(rollout(env, sample_action, params, task, jax.random.fold_in(key, s),
                                          c.eval_episodes, c.horizon, learner.action_map))
        out.append(traj)
        if s < c.eval_steps:
            g = jax.grad(learner.inner_loss)(params, traj, weights)
            params = jax.tree_util.tree_map(lambda p, gi: p - learner.eval_lr(s) * gi, params, g)
            weights = baseline_weights(traj.obs, traj.rewards, traj.mask, c.discount)
    return mean_episode_return(jax.tree_util.tree_map(lambda *xs: jax.numpy.stack(xs), *out))


def baseline_order(learner: Any, env: Any, state: Any, tasks: Any, keys: jax.Array) -> None:
    curve = jax.jit(jax.vmap(lambda t, k: predict_first_curve(learner, env, state, t, k)))
    c = np.asarray(curve(tasks, keys))
    ci = 1.96 * c.std(0, ddof=1) / np.sqrt(len(c))
    print("baseline predicted from the previous batch (rllab's older order): "
          + " / ".join(f"{m:.2f} ± {e:.2f}" for m, e in zip(c.mean(0), ci)))


def finn_goal_array() -> np.ndarray:
    """Finn et al.'s 40 point-nav test goals: ``np.random.seed(1); np.random.uniform(-0.5, 0.5, (40, 2))``."""
    return np.random.RandomState(1).uniform(-0.5, 0.5, size=(40, 2)).astype(np.float32)


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


def nav2d_mean_field(learner: Any, env: Any, state: Any, tasks: Any) -> None:
    """How precisely the unadapted policy's mean action walks to the goal, by distance.

    From 16 points on a circle of radius ``r`` around each task's goal (inside the court),
    one env step with the mean action: the cosine between the move and the goal direction,
    the step length against the ideal ``min(r, 10)``, and the distance left to the goal.
    """
    from metabench.envs.nav2d import Nav2dState

    angles = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], -1)
    goals = np.asarray(tasks.goal)
    to_env = learner.action_map or (lambda a: a)

    def one_step(pos: jax.Array, params: Any) -> jax.Array:
        action = to_env(policy_mean(state.params, env._obs(pos, params.goal)))
        s = Nav2dState(pos=pos, t=jax.numpy.zeros((), jax.numpy.int32), done=jax.numpy.zeros((), bool))
        return env.step(jax.random.key(0), s, action, params)[1].pos

    step = jax.jit(jax.vmap(one_step))
    for r in (100.0, 30.0, 10.0, 3.0, 1.0, 0.3):
        pos = (goals[:, None, :] + r * ring[None]).reshape(-1, 2)
        task_of = np.repeat(np.arange(len(goals)), len(ring))
        inside = np.all((pos >= 0) & (pos <= env.court), axis=-1)
        pos, task_of = pos[inside].astype(np.float32), task_of[inside]
        params = jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x)[task_of], tasks)
        moved = np.asarray(step(jax.numpy.asarray(pos), params)) - pos
        want = goals[task_of] - pos
        cos = (moved * want).sum(-1) / (np.linalg.norm(moved, axis=-1) * np.linalg.norm(want, axis=-1) + 1e-12)
        left = np.linalg.norm(pos + moved - goals[task_of], axis=-1)
        print(f"mean action from r = {r:5.1f}: median cosine {np.median(cos):6.3f}  median step "
              f"{np.median(np.linalg.norm(moved, axis=-1)):6.2f} (ideal {min(r, env.max_step_size):5.2f})  "
              f"median distance left {np.median(left):6.2f}  within goal_radius {np.mean(left <= env.goal_radius):.3f}")


def finn_goals(learner: Any, state: Any, tasks: Any) -> None:
    goals = finn_goal_array()
    curve = jax.jit(jax.vmap(learner.eval_curve, in_axes=(None, 0, 0)))
    keys = jax.random.split(jax.random.key(7), 40)
    for name, gs in (("Finn et al.'s 40 test goals", goals), ("their committed script's goals[6]", np.repeat(goals[6:7], 40, 0))):
        t = type(tasks)(goal=jax.numpy.asarray(gs))
        c = np.asarray(curve(state, t, keys))
        ci = 1.96 * c.std(0) / np.sqrt(len(c))
        print(f"{name}: " + " / ".join(f"{m:.2f} ± {e:.2f}" for m, e in zip(c.mean(0), ci)))


def log_std_shifts(learner: Any, state: Any, tasks: Any, keys: jax.Array, shifts: list[float]) -> None:
    """The harness's adaptation curve with ``log_std + d`` for each ``d`` in ``shifts``."""
    curve = jax.jit(jax.vmap(learner.eval_curve, in_axes=(None, 0, 0)))
    for d in shifts:
        params = {**state.params, "log_std": state.params["log_std"] + d}
        c = np.asarray(curve(state._replace(params=params), tasks, keys)).mean(0)
        print(f"log-std shift {d:+.2f}: " + " / ".join(f"{x:.2f}" for x in c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("env")
    ap.add_argument("out")
    ap.add_argument("--learner", default="maml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--finn-goals", action="store_true")
    ap.add_argument("--split", default="test", help="frozen task set to probe on (val: for choosing settings)")
    ap.add_argument("--log-std-shift", action="append", type=float, default=[], metavar="D",
                    help="also evaluate with the policy's log-std shifted by D (repeatable)")
    ap.add_argument("--state", choices=("best", "last"), default="best",
                    help="the checkpoint's best-validation state (tested by the harness) or its last iterate")
    ap.add_argument("--baseline-order", choices=("fit-first", "predict-first"), default="fit-first",
                    help="predict-first: also print the curve with each step's baseline fitted on the previous batch")
    args = ap.parse_args()
    if args.finn_goals and not args.env.startswith("point-nav"):
        ap.error(f"--finn-goals is for point-nav (Finn et al.'s test goals); got {args.env}")
    env = metabench.make(args.env)
    learner = metabench.make_learner(args.learner, env, **parse_assignments(args.set, "--set", literal=False))
    state = load_best(learner, args.out, args.env, args.state)
    n = env.num_eval_tasks
    tasks = env.eval_tasks(args.split, 0, n)
    keys = jax.random.split(eval_key(env, args.split), n)
    print(f"{args.env}: {n} {args.split} tasks, log_std {np.asarray(state.params['log_std']).round(3)}")
    success = per_step_table(learner, state, tasks, keys, nav2d=args.env.startswith("nav2d"))
    mean_action_return(learner, env, state, tasks, keys)
    if args.env.startswith("nav2d"):
        nav2d_mean_field(learner, env, state, tasks)
    goal = getattr(tasks, "goal", None)
    if goal is not None and np.asarray(goal).shape[-1] == 2 and not args.env.startswith("nav2d"):
        dist = np.linalg.norm(np.asarray(goal), axis=-1)
        print(f"corr(|goal|, success) {np.corrcoef(dist, success)[0, 1]:.2f}; tasks with success < 0.5: "
              f"{(success < 0.5).sum()}, >= 0.9: {(success >= 0.9).sum()}")
        for i in np.argsort(success)[:5]:
            print(f"  task {i}: goal {np.asarray(goal)[i].round(3)}, |goal| {dist[i]:.2f}, success {success[i]:.2f}")
    if args.finn_goals:
        finn_goals(learner, state, tasks)
    if args.log_std_shift:
        log_std_shifts(learner, state, tasks, keys, args.log_std_shift)
    if args.baseline_order == "predict-first":
        baseline_order(learner, env, state, tasks, keys)


if __name__ == "__main__":
    main()
