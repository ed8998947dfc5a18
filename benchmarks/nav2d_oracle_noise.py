"""How much noise can a Nav2d policy afford? The exact walk to the goal plus Gaussian noise.

    python benchmarks/nav2d_oracle_noise.py [--env nav2d-hard] [--episodes 20] [--log-std -1.8 -3 ...]

The policy's mean is the oracle displacement ``u = (goal - agent) / max_step_size`` (the
optimal action: a straight step, capped at the largest one, ``Nav2d.displacement_to_action``)
and its sample adds ``N(0, exp(log_std)^2)`` per axis in units of the largest step, as
``maml-rl --set squash=displacement`` samples. On the env's 40 frozen test tasks it prints the
share of episodes solved by seed 002's criterion (``Nav2d.solved``), the share that reach
the goal and the mean return, per log-std. This is the ceiling a MAML-RL policy with a
perfect mean reaches at its own noise level (``docs/results.md``, Nav2d).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import metabench
from metabench.rollout import episode_returns, rollout_tasks


def oracle_table(env_id: str, log_stds: list[float], episodes: int,
                 seed: int = 0) -> list[tuple[float, float, float, float]]:
    """Rows ``(log_std, solved share, goal-reached share, mean return)`` over the test tasks."""
    env = metabench.make(env_id)
    tasks = env.eval_tasks("test")
    half = env.court / 2.0

    def policy(log_std: jax.Array, obs: jax.Array, key: jax.Array) -> jax.Array:
        u = (obs[2:4] - obs[0:2]) * half / env.max_step_size  # obs holds normalised positions
        return env.displacement_to_action(u + jnp.exp(log_std) * jax.random.normal(key, (2,)))

    run = jax.jit(lambda ls: rollout_tasks(env, policy, ls, tasks, jax.random.key(seed), episodes))
    rows = []
    for ls in log_stds:
        traj = run(jnp.float32(ls))
        solved = float(np.asarray(env.solved(traj)).mean())
        bonus = jnp.max(jnp.asarray(traj.rewards) * jnp.asarray(traj.mask), axis=-1) > env.goal_bonus / 2
        reached = float(np.asarray(bonus).mean())  # the episode ended within goal_radius
        rows.append((ls, solved, reached, float(np.asarray(episode_returns(traj)).mean())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="nav2d-hard", choices=["nav2d-easy", "nav2d-hard"])
    ap.add_argument("--episodes", type=int, default=20, help="episodes per test task")
    ap.add_argument("--log-std", type=float, nargs="+", default=[0.0, -1.0, -1.8, -2.5, -3.0, -3.5, -4.0, -4.6])
    args = ap.parse_args()
    print(f"{args.env}: oracle mean + Gaussian noise (displacement units of one largest step), "
          f"40 test tasks x {args.episodes} episodes")
    print(f"{'log-std':>8} {'noise (court units)':>20} {'solved':>8} {'reached':>8} {'return':>9}")
    env = metabench.make(args.env)
    for ls, solved, reached, ret in oracle_table(args.env, args.log_std, args.episodes):
        print(f"{ls:8.2f} {np.exp(ls) * env.max_step_size:20.3f} {solved:8.3f} {reached:8.3f} {ret:9.1f}")


if __name__ == "__main__":
    main()
