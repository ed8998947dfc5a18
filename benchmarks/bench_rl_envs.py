"""Env steps per second of the meta-RL task distributions, batched vs single-env, same run.

Measured (each the best of ``--repeats`` timed runs after a warm-up/compile run):

- Nav2d (``nav2d-hard``), JAX: ``rollout_tasks`` over ``--tasks`` (1,024) tasks x 1 episode,
  a jitted ``lax.scan`` over the 100-step horizon, uniform-random policy drawn in JAX;
  ``block_until_ready``. Counted steps = masked (live) steps.
  Reference: single-env stepping of the same task through the gymnasium adapter
  (``env.task_env(task)``: one jitted step per call), random actions from numpy.
- Each MuJoCo task (``halfcheetah-vel``, ``halfcheetah-dir``, ``ant-dir``):
  ``vector_rollout`` over ``--mj-tasks`` tasks x ``--mj-episodes`` episodes with
  gymnasium's ``SyncVectorEnv``, a plain loop over the task envs (``vectorization="loop"``)
  and (``--async``) ``AsyncVectorEnv`` (spawned workers, one per sub-env), jitted random
  policy. References, same run: single-env stepping of the
  plain ``gymnasium`` v5 env of the same model (``HalfCheetah-v5``/``Ant-v5`` via
  ``gymnasium.make``, numpy random actions) and of our single task env; plus the same
  vector env stepped with numpy random actions (``*_env_only``: env cost without the policy).

Rates are env steps/s (one step = one ``step`` of one env: 5 MuJoCo substeps for the
locomotion models). Writes ``benchmarks/results/rl_envs.json`` atomically, with machine info.

    python benchmarks/bench_rl_envs.py [--tasks 1024] [--repeats 3] [--async]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import metabench
from metabench.atomic import atomic_write_json
from metabench.harness.provenance import code_version
from metabench.rollout import rollout_tasks

VECTOR_NAMES = {"sync": "SyncVectorEnv", "loop": "a plain loop over the task envs", "async": "AsyncVectorEnv (spawn)"}
RESULTS = Path(__file__).resolve().parent / "results" / "rl_envs.json"
GYM_IDS = {"halfcheetah-vel": "HalfCheetah-v5", "halfcheetah-dir": "HalfCheetah-v5", "ant-dir": "Ant-v5"}


def best_rate(fn: Any, repeats: int) -> tuple[float, int]:
    """Best steps/s over ``repeats`` calls of ``fn() -> steps``; the first call is a warm-up."""
    fn()
    best, steps = 0.0, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        steps = fn()
        best = max(best, steps / (time.perf_counter() - t0))
    return best, steps


def uniform_policy(low: np.ndarray, high: np.ndarray) -> Any:
    lo, hi = jnp.asarray(low), jnp.asarray(high)
    return lambda params, obs, key: jax.random.uniform(key, lo.shape, minval=lo, maxval=hi)


def single_env_steps(env: Any, n_steps: int, seed: int = 0) -> int:
    """Step one gymnasium env ``n_steps`` times with numpy random actions, resetting at the end."""
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(n_steps, *low.shape)).astype(np.float32)
    env.reset(seed=seed)
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return n_steps


def bench_nav2d(args: argparse.Namespace) -> dict[str, Any]:
    env = metabench.make("nav2d-hard")
    tasks = env.sample_tasks(jax.random.key(0), args.tasks)
    policy = uniform_policy(env.action_space.low, env.action_space.high)
    run = jax.jit(lambda k: rollout_tasks(env, policy, None, tasks, k, 1).mask.sum())
    keys = iter(jax.random.split(jax.random.key(1), args.repeats + 1))

    def batched() -> int:
        return int(run(next(keys)).block_until_ready())

    jax_rate, jax_steps = best_rate(batched, args.repeats)
    te = env.task_env(jax.tree_util.tree_map(lambda x: x[0], tasks))
    single_rate, _ = best_rate(lambda: single_env_steps(te, args.single_steps), args.repeats)
    return {
        "env": env.spec.id,
        "batched": {"method": f"JAX rollout_tasks, {args.tasks} tasks x 1 episode x {env.max_steps} steps, jitted scan",
                    "steps_per_s": jax_rate, "steps_per_call": jax_steps},
        "single": {"method": "gymnasium adapter task_env, one jitted step per call", "steps_per_s": single_rate},
        "ratio": jax_rate / single_rate,
    }


def bench_mujoco(env_id: str, args: argparse.Namespace) -> dict[str, Any]:
    import gymnasium as gym

    out: dict[str, Any] = {"env": f"{env_id}-v0", "gymnasium_id": GYM_IDS[env_id]}
    plain = gym.make(GYM_IDS[env_id])
    out["single_gymnasium"] = {
        "method": f"gymnasium.make('{GYM_IDS[env_id]}'), single env",
        "steps_per_s": best_rate(lambda: single_env_steps(plain, args.single_steps), args.repeats)[0],
    }
    plain.close()
    modes = ["sync", "loop", "async"] if args.use_async else ["sync", "loop"]
    for mode in modes:
        env = metabench.make(env_id, vectorization=mode)
        if mode == "sync":
            te = env.task_env()
            out["single_task_env"] = {
                "method": "metabench task_env, single env",
                "steps_per_s": best_rate(lambda: single_env_steps(te, args.single_steps), args.repeats)[0],
            }
            te.close()
        tasks = env.sample_tasks(jax.random.key(0), args.mj_tasks)
        policy = uniform_policy(env.action_space.low, env.action_space.high)
        keys = iter(jax.random.split(jax.random.key(1), args.repeats + 1))

        def vectorised() -> int:
            traj = rollout_tasks(env, policy, None, tasks, next(keys), args.mj_episodes, horizon=args.mj_horizon)
            return int(np.asarray(traj.mask).sum())

        rate, steps = best_rate(vectorised, args.repeats)
        b = args.mj_tasks * args.mj_episodes
        vec = env._vector_env(b)  # the same vector env, stepped with numpy actions (env cost only)
        rng = np.random.default_rng(0)
        acts = rng.uniform(-1, 1, size=(args.mj_horizon, b, *env.action_space.shape)).astype(np.float32)

        def env_only() -> int:
            vec.reset(seed=list(range(b)))
            live, steps = np.ones(b, bool), 0
            for a in acts:  # the loop steps only the envs still in their episode; the others auto-reset
                steps += int(live.sum()) if mode == "loop" else b
                _, _, term, trunc, _ = vec.step(a)
                live &= ~(term | trunc)
            return steps

        out[f"vector_{mode}_env_only"] = {
            "method": f"the same {b}-env vector env stepped with numpy random actions (no policy, auto-reset steps counted)",
            "steps_per_s": best_rate(env_only, args.repeats)[0],
        }
        out[f"vector_{mode}"] = {
            "method": f"vector_rollout, {VECTOR_NAMES[mode]} of {b} envs "
            f"({args.mj_tasks} tasks x {args.mj_episodes} episodes x {args.mj_horizon} steps), jitted policy",
            "steps_per_s": rate,
            "live_steps_per_call": steps,
        }
        env.close()
    base = out["single_gymnasium"]["steps_per_s"]
    out["ratios_vs_single_gymnasium"] = {
        k: v["steps_per_s"] / base for k, v in out.items() if isinstance(v, dict) and "steps_per_s" in v
    }
    return out


def machine_info() -> dict[str, Any]:
    import mujoco

    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device": str(jax.devices()[0]),
        "mujoco": mujoco.__version__,
        "gymnasium": __import__("gymnasium").__version__,
        "mjx": "not installed (mujoco.mjx not importable)",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=1024, help="Nav2d tasks in the JAX batch")
    ap.add_argument("--single-steps", type=int, default=2000, help="steps per single-env timing")
    ap.add_argument("--mj-tasks", type=int, default=8)
    ap.add_argument("--mj-episodes", type=int, default=2)
    ap.add_argument("--mj-horizon", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--async", dest="use_async", action="store_true", help="also time AsyncVectorEnv")
    ap.add_argument("--skip-mujoco", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    record: dict[str, Any] = {"machine": machine_info(), "code": code_version(),
                              "args": {k: str(v) for k, v in vars(args).items()}}
    record["nav2d"] = nav = bench_nav2d(args)
    rows = [(nav["env"], "JAX batched", nav["batched"]["steps_per_s"], nav["single"]["steps_per_s"], nav["ratio"])]
    record["mujoco"] = {}
    if not args.skip_mujoco:
        for env_id in GYM_IDS:
            r = bench_mujoco(env_id, args)
            record["mujoco"][env_id] = r
            base = r["single_gymnasium"]["steps_per_s"]
            for key in ("single_task_env", *(f"vector_{m}{x}" for m in VECTOR_NAMES for x in ("", "_env_only"))):
                if key in r:
                    rows.append((r["env"], key, r[key]["steps_per_s"], base, r[key]["steps_per_s"] / base))
    print(f"{'env':<22} {'method':<22} {'steps/s':>12} {'single gym':>12} {'ratio':>8}")
    for env_id, method, rate, base, ratio in rows:
        print(f"{env_id:<22} {method:<22} {rate:>12,.0f} {base:>12,.0f} {ratio:>8.2f}")
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
