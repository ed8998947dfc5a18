"""metabench side of ``bench_peer.py``: ``protonet`` / ``maml`` training steps on the driver's episodes.

Runs in metabench's venv. Same protocol as ``worker_l2l.py`` (JSON lines on stdin/stdout).
Each step is the jitted ``learner.meta_train_step`` fed the host arrays of one step's
episodes (``meta_batch`` of them), as a user's loop would; a round blocks on its last result.
``--set key=value`` overrides a learner config field (a variant under test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=("protonet", "maml"), required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    import jax

    import metabench
    from metabench.tasks import SupervisedTask

    env = metabench.make(args.env)
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    learner = metabench.make_learner(args.algo, env, **overrides)
    data = dict(np.load(args.episodes))
    x, ys, yq = data["x"], data["ys"], data["yq"]
    n_s = ys.shape[-1]
    step = jax.jit(learner.meta_train_step)
    state = learner.init(jax.random.key(args.seed))
    key = jax.random.key(args.seed + 1)
    print(json.dumps({"ready": True, "jax": jax.__version__, "config": str(learner.config)}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        t, c = time.perf_counter(), time.process_time()
        metrics = []
        for i in range(msg["start"], msg["start"] + msg["n"]):
            e = i % x.shape[0]
            tasks = SupervisedTask(support=(x[e, :, :n_s], ys[e]), query=(x[e, :, n_s:], yq[e]))
            key, k = jax.random.split(key)
            state, m = step(state, tasks, k)
            metrics.append(m["loss"])
        losses = [float(v) for v in jax.block_until_ready(metrics)]
        print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
                          "losses": losses}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
