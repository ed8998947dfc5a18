"""What does Finn et al.'s TRPO curvature product do on a MAML-RL state? (``docs/results.md``)

    python benchmarks/diagnose_trpo_hvp.py ENV_ID [RUN_OUT] [--learner maml] [--set key=value ...]
        [--tasks 20] [--seed 0]

Finn et al.'s code computes TRPO's Hessian-vector products by rllab's ``FiniteDifferenceHvp``
(``eps = 1e-8 / ||theta||``, float32; ``metabench.baselines._trpo``). On one meta-batch of
training tasks sampled with the state of ``RUN_OUT`` (the final state of its
``runs/ENV*/checkpoint.npz``; none: the initialisation, ``key(seed)``), this prints

* the norms of ``theta`` and of the meta-gradient ``g``;
* for ``v = g`` (what CG multiplies first) and ``v = g / damping`` (where CG ends when the
  product at ``g`` is 0): how many parameters ``theta +- eps v`` moves in float32, the norm
  of the exact (Fisher) and the finite-difference product and their cosine;
* one TRPO step with each product: accepted, backtracks, KL, surrogate before and after,
  step norm, cosine between the step and ``g``, and the change of the policy's log-std.
"""

from __future__ import annotations

import argparse
import glob

import jax
import jax.numpy as jnp
import numpy as np

import metabench
from metabench.baselines._trpo import finite_difference_eps, finite_difference_hvp, trpo_step
from metabench.cli import parse_assignments
from metabench.harness.checkpoint import load_checkpoint


def _cos(a: jax.Array, b: jax.Array) -> float:
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b) + 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("env")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--learner", default="maml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    env = metabench.make(args.env)
    learner = metabench.make_learner(args.learner, env, **parse_assignments(args.set, "--set", literal=False))
    if getattr(learner, "host", True):
        raise SystemExit(f"{args.env}: needs a JAX env and a MAML-RL learner")
    state = learner.init(jax.random.key(args.seed))
    if args.out:
        paths = glob.glob(f"{args.out}/runs/{args.env}*/checkpoint.npz")
        if len(paths) != 1:
            raise SystemExit(f"expected one checkpoint under {args.out}/runs/{args.env}*/, found {paths}")
        state = load_checkpoint(paths[0], {"state": state, "best": state})[0]["state"]
    k_tasks, k_roll = jax.random.split(jax.random.key(args.seed + 1))
    tasks = env.sample_tasks(k_tasks, args.tasks)

    @jax.jit
    def batch(state, tasks, key):
        pre, post, adapted = jax.vmap(learner._collect_one, (None, 0, 0))(
            state.params, tasks, jax.random.split(key, args.tasks))
        return (pre, post, *jax.vmap(learner._post_stats_one)(adapted, post))

    samples = batch(state, tasks, k_roll)
    flat0, loss, kl, fvp, unravel = learner.trpo_problem(state, *samples)
    g = jax.jit(jax.grad(loss))(flat0)
    fd = jax.jit(finite_difference_hvp(jax.grad(kl), flat0))
    fvp = jax.jit(fvp)
    eps = finite_difference_eps(flat0)
    damping = 1e-5  # trpo_step's default (rllab's reg_coeff)
    print(f"{args.env}, {'final state of ' + args.out if args.out else 'initialisation'}: "
          f"||theta|| {float(jnp.linalg.norm(flat0)):.3f}, ||g|| {float(jnp.linalg.norm(g)):.3g}, "
          f"{flat0.size} parameters, eps {float(eps):.3g}")
    for name, v in (("g", g), ("g / damping", g / damping)):
        moved = int(jnp.sum((flat0 + eps * v) != flat0))
        ex, fdv = fvp(v), fd(v)
        print(f"  v = {name:12s}: parameters moved {moved:6d}; |F v| {float(jnp.linalg.norm(ex)):.4g}, "
              f"|FD v| {float(jnp.linalg.norm(fdv)):.4g}, cos {_cos(ex, fdv):+.4f}")
    steps = {"exact": dict(fvp=fvp), "finite_difference": dict(fvp=fd, fresh_curvature=True)}
    for name, kw in steps.items():
        res = jax.jit(lambda t, kw=kw: trpo_step(loss, kl, t, **kw))(flat0)
        step = flat0 - res.theta
        dls = np.asarray(unravel(res.theta)["log_std"] - state.params["log_std"])
        print(f"  TRPO step, {name:17s}: accepted {bool(res.accepted)}, backtracks {int(res.backtracks)}, "
              f"KL {float(res.kl):.4f}, surrogate {float(res.loss_before):+.5f} -> {float(res.loss_after):+.5f}, "
              f"|step| {float(jnp.linalg.norm(step)):.4f}, cos(step, g) {_cos(step, g):+.3f}, "
              f"log-std change {[round(float(x), 4) for x in dls]}")


if __name__ == "__main__":
    main()
