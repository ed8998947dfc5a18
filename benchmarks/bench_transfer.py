"""Transfer baselines: pre-training throughput with the non-episodic sampler, and batched fine-tuning eval.

1. Pre-training images/s of ``baseline`` (Conv-4 + linear head, Adam, batch ``--batch``; 16 is
   the learner's default, Chen et al.'s) with the harness's fused step (the ``train_batches``
   sampler's ``from_order`` + ``meta_train_step`` in one jit, the data and the epoch's order
   passed as arguments; the order, ``epoch_order``, once per epoch, its cost amortised over the
   epoch's steps and added) against a plain reference in the same process: the same jitted
   step on batches gathered beforehand (device arrays, cycled). They alternate in ``--rounds``
   rounds (the machine is shared: a load burst hits all) with the per-step sampler (the
   order's slice recomputed every step, ``permutation_slice``: the path before the epoch
   hook, same batches); overhead = 1 - reference time / fused time (target < 10 %), from the
   fastest round of each (the least disturbed) and from the medians. Also the samplers alone
   and the epoch order (own jits, ms per call). On omniglot-lite 28x28x1 (rotation classes) and on a
   synthetic 84x84x3 pool of miniImageNet's shape (64 classes x 60 images), the latter also
   with Chen et al.'s augmentation (which is work, not sampler overhead; reported separately).
2. Evaluation of ``--tasks`` frozen omniglot-lite-5w1s test tasks (Chen et al.'s 100 epochs of
   head fine-tuning each) by the harness's ``Evaluator`` (batches of 50: features embedded
   once per example, ``shares_example_features``; and, for reference, the learner's
   ``batched_eval_curves`` on each task's images) against a per-task loop of the jitted
   ``eval_curve``, same state and keys; the accuracies must agree. All three after a warm-up
   (compilation excluded).

Writes ``benchmarks/results/bench_transfer.json`` (with the load average: the machine is shared).

    python benchmarks/bench_transfer.py [--steps 200] [--rounds 10] [--tasks 600]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np


def _rounds(fns: dict[str, Any], steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each ``fn(i)``, in ``rounds`` alternating rounds of ``steps // rounds`` calls
    (after one warm-up call each), blocking on the result of each round."""
    for fn in fns.values():
        jax.block_until_ready(fn(0))
    per = max(1, steps // rounds)
    out: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            res = None
            for i in range(r * per + 1, (r + 1) * per + 1):
                res = fn(i)
            jax.block_until_ready(res)
            out[k].append((time.perf_counter() - t) / per)
    return out


def pretrain_throughput(env: Any, steps: int, batch: int, rounds: int, augment: bool = False) -> dict[str, Any]:
    import metabench

    learner = metabench.make_learner("baseline", env, batch_size=batch, augment=augment)
    sample, data = learner.train_batches(env)
    key = jax.random.key(0)
    state0 = learner.init(jax.random.key(1))

    def step(s: Any, b: Any) -> Any:
        return learner.meta_train_step(s, b, jax.random.key(2))

    # the harness's path: the epoch's order once per epoch, a slice and a gather per step
    fused = jax.jit(lambda s, d, o, t: step(s, sample.from_order(d, o, key, t)))
    per_step = jax.jit(lambda s, d, t: step(s, sample(d, key, t)))  # the order's slice recomputed every step
    plain = jax.jit(step)
    order_of = jax.jit(sample.epoch_order)
    alone = jax.jit(sample.from_order)
    alone_per_step = jax.jit(sample)
    orders: dict[int, Any] = {}

    def order(i: int) -> Any:
        e = i // sample.steps_per_epoch
        if e not in orders:
            orders.clear()
            orders[e] = order_of(key, np.int32(e))
        return orders[e]

    pre = [alone_per_step(data, key, np.int32(i)) for i in range(16)]  # gathered beforehand
    jax.block_until_ready(pre)
    st = {"f": state0, "s": state0, "p": state0}

    def run_fused(i: int) -> Any:
        st["f"], m = fused(st["f"], data, order(i), np.int32(i))
        return m["loss"]

    def run_per_step(i: int) -> Any:
        st["s"], m = per_step(st["s"], data, np.int32(i))
        return m["loss"]

    def run_plain(i: int) -> Any:
        st["p"], m = plain(st["p"], pre[i % 16])
        return m["loss"]

    t = _rounds({"fused": run_fused, "per_step": run_per_step, "plain": run_plain,
                 "sampler": lambda i: alone(data, order(i), key, np.int32(i)).x,
                 "sampler_per_step": lambda i: alone_per_step(data, key, np.int32(i)).x,
                 "epoch_order": lambda i: order_of(key, np.int32(i))}, steps, rounds)
    best = {k: min(v) for k, v in t.items()}
    med = {k: float(np.median(v)) for k, v in t.items()}
    per_epoch = sample.steps_per_epoch
    # the fused rounds stay in one epoch: its order's cost, amortised over the epoch's steps, is added
    fused_best, fused_med = best["fused"] + best["epoch_order"] / per_epoch, med["fused"] + med["epoch_order"] / per_epoch
    return {"env": env.spec.id, "image_shape": list(env.image_shape), "batch": batch, "augment": augment,
            "steps": steps, "rounds": rounds, "steps_per_epoch": per_epoch,
            "fused_images_per_s": batch / fused_best, "pregathered_images_per_s": batch / best["plain"],
            "sampler_overhead": 1.0 - best["plain"] / fused_best,
            "fused_images_per_s_median": batch / fused_med, "pregathered_images_per_s_median": batch / med["plain"],
            "sampler_overhead_median": 1.0 - med["plain"] / fused_med,
            "per_step_sampler_overhead": 1.0 - best["plain"] / best["per_step"],
            "per_step_sampler_overhead_median": 1.0 - med["plain"] / med["per_step"],
            "sampler_alone_ms": 1e3 * best["sampler"], "sampler_alone_ms_median": 1e3 * med["sampler"],
            "per_step_sampler_alone_ms": 1e3 * best["sampler_per_step"],
            "per_step_sampler_alone_ms_median": 1e3 * med["sampler_per_step"],
            "epoch_order_ms": 1e3 * best["epoch_order"], "epoch_order_ms_median": 1e3 * med["epoch_order"],
            "loadavg": os.getloadavg()}


def rgb_env() -> Any:
    """miniImageNet-shaped synthetic pool: 64 / 16 / 20 classes x 60 images of 84x84x3."""
    from metabench.classification import ClassificationEnv, ImagePool, SplitTable
    from metabench.spec import EnvSpec

    class RGB(ClassificationEnv):
        def _load(self):  # type: ignore[no-untyped-def]
            rng = np.random.default_rng(0)
            groups = [rng.integers(0, 256, (60, 84, 84, 3), dtype=np.uint8) for _ in range(100)]
            pool = ImagePool.from_groups(groups, [f"c{i}" for i in range(100)])
            return pool, {"train": SplitTable.of(range(64)), "val": SplitTable.of(range(64, 80)),
                          "test": SplitTable.of(range(80, 100))}, "synthetic-rgb-bench"

    spec = EnvSpec(id="rgb-bench-5w1s-v0", entry_point="x:RGB", kind="classification", eval_tasks=600)
    return RGB(spec, ways=5, shots=1, queries=15)


def eval_speed(n_tasks: int) -> dict[str, Any]:
    import metabench
    from metabench.harness.evaluate import Evaluator, eval_key

    env = metabench.make(metabench.spec("omniglot-lite-5w1s").replace(eval_tasks=n_tasks))
    learner = metabench.make_learner("baseline", env)
    state = learner.init(jax.random.key(0))
    sample, data = learner.train_batches(env)
    step = jax.jit(learner.meta_train_step)
    for t in range(50):  # running batch-norm statistics off their init (features as after pre-training)
        state, _ = step(state, sample(data, jax.random.key(5), np.int32(t)), jax.random.key(1))
    ev = Evaluator(learner, env, 50)
    assert ev._shared
    ev.curves(state, "test", 50)  # compile
    t = time.perf_counter()
    batched = ev.curves(state, "test")
    t_batched = time.perf_counter() - t
    ev._shared = False  # the learner's batched_eval_curves on each task's images
    ev.curves(state, "test", 50)
    t = time.perf_counter()
    per_image = ev.curves(state, "test")
    t_images = time.perf_counter() - t
    keys = jax.random.split(eval_key(env, "test"), n_tasks)
    one = jax.jit(learner.eval_curve)
    tasks = env.eval_tasks("test")
    jax.block_until_ready(one(state, jax.tree_util.tree_map(lambda x: x[0], tasks), keys[0]))
    t = time.perf_counter()
    loop = np.stack([np.asarray(one(state, jax.tree_util.tree_map(lambda x, i=i: x[i], tasks), keys[i]))
                     for i in range(n_tasks)])
    t_loop = time.perf_counter() - t
    return {"env": env.spec.id, "tasks": n_tasks, "ft_epochs": learner.config.ft_epochs, "batched_s": t_batched,
            "per_task_loop_s": t_loop, "speedup": t_loop / t_batched,
            "batched_task_images_s": t_images, "batched_task_images_speedup": t_loop / t_images,
            "max_abs_accuracy_difference": float(np.abs(batched - loop).max()),
            "max_abs_accuracy_difference_task_images": float(np.abs(per_image - loop).max()),
            "mean_accuracy": float(batched.mean()), "loadavg": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--tasks", type=int, default=600)
    p.add_argument("--out", default="benchmarks/results/bench_transfer.json")
    args = p.parse_args()
    import metabench
    from metabench.atomic import atomic_write_json
    from metabench.harness import provenance

    load0 = os.getloadavg()
    omni = metabench.make("omniglot-lite-5w1s")
    rgb = rgb_env()
    rows = [pretrain_throughput(omni, args.steps, args.batch, args.rounds),
            pretrain_throughput(rgb, args.steps // 8, args.batch, max(2, args.rounds // 2)),
            pretrain_throughput(rgb, args.steps // 8, args.batch, max(2, args.rounds // 2), augment=True)]
    for r in rows:
        print(f"pretrain {r['env']} aug={r['augment']}: fused {r['fused_images_per_s']:.0f} img/s, "
              f"pre-gathered {r['pregathered_images_per_s']:.0f} img/s, overhead {100 * r['sampler_overhead']:.1f} % "
              f"(medians {100 * r['sampler_overhead_median']:.1f} %; per-step sampler {100 * r['per_step_sampler_overhead']:.1f} "
              f"/ {100 * r['per_step_sampler_overhead_median']:.1f} %), sampler alone {r['sampler_alone_ms']:.3f} ms "
              f"(per-step {r['per_step_sampler_alone_ms']:.2f} ms), epoch order {r['epoch_order_ms']:.1f} ms")
    ev = eval_speed(args.tasks)
    print(f"eval {ev['tasks']} tasks: batched {ev['batched_s']:.1f} s, loop {ev['per_task_loop_s']:.1f} s, "
          f"x{ev['speedup']:.1f}, max |diff| {ev['max_abs_accuracy_difference']}; on task images "
          f"{ev['batched_task_images_s']:.1f} s, x{ev['batched_task_images_speedup']:.1f}")
    out = {"pretrain": rows, "eval": ev, "args": vars(args), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
           "cpus": os.cpu_count(), "backend": jax.default_backend(), "code": provenance.code_version(),
           "versions": provenance.package_versions()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
