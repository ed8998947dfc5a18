"""Same-run peer benchmark (issue 31): metabench vs learn2learn 0.2.0 on torch CPU, alternating rounds.

One invocation, one machine, the same episodes fed to both sides:

* ``protonet``: omniglot-lite-5w5s, 15 queries, Snell Conv-4 64, Adam 1e-3, one episode a step;
* ``maml``: omniglot-lite-5w1s, 15 queries, Finn et al.'s strided Conv-4 64, second order,
  1 inner step at lr 0.4, meta-batch 32, Adam 1e-3 (metabench's ``maml`` defaults for this env).

The driver (metabench's venv) samples the episodes from metabench's env and writes them to a
temporary ``.npz``; ``worker_metabench.py`` (this venv) and ``worker_l2l.py`` (the peer venv of
``setup_venv.sh``) load them, compile / warm up, then train ``--steps`` steps a round when told
to, one worker at a time, the order alternating between rounds. Both use ``--threads`` threads
(torch ``set_num_threads``; XLA's CPU pool is the machine's core count, checked equal), with
``OMP_WAIT_POLICY=PASSIVE`` by default: with libgomp's spinning default, torch's two OpenMP
threads stalled each other on this shared machine (a step ~5x slower than with one thread). The
ratio is metabench / learn2learn in episodes (tasks) per second: the medians over rounds, and
the median and range of the per-round ratios. Writes ``benchmarks/results/peer_<algo>.json``::

    python benchmarks/peer/bench_peer.py [--algos protonet,maml] [--rounds 5] [--steps 20]

Exits 2, saying what is missing and how to fix it, when the data root or the peer venv
(torch, learn2learn) is unavailable; it never falls back to a stored peer number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: per algorithm: env id, steps of a round's default, tasks a step, worker options
SETUPS: dict[str, dict[str, Any]] = {
    "protonet": {"env": "omniglot-lite-5w5s", "steps": 20, "batch": 1, "l2l": []},
    "maml": {"env": "omniglot-lite-5w1s", "steps": 3, "batch": 32, "l2l": ["--inner-lr", "0.4"]},
}


class Unavailable(RuntimeError):
    """A prerequisite (data, torch, learn2learn) is missing; the message says how to fix it."""


def check_peer(python: str) -> dict[str, Any]:
    """Versions of torch and learn2learn in the peer interpreter, or ``Unavailable``."""
    if not Path(python).exists():
        raise Unavailable(f"peer python {python} does not exist: run `bash benchmarks/peer/setup_venv.sh` "
                          "or pass --peer-python")
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from l2l_import import load_l2l; l = load_l2l(); "
            "import torch; print(json.dumps({'torch': torch.__version__, 'learn2learn': l.version, "
            "'cuda_build': torch.version.cuda}))")
    r = subprocess.run([python, "-c", code, str(HERE)], capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise Unavailable(f"torch / learn2learn not importable by {python}: {last}; "
                          "run `bash benchmarks/peer/setup_venv.sh`")
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_episodes(env_id: str, steps: int, batch: int, seed: int, path: Path) -> dict[str, Any]:
    """``steps`` steps of ``batch`` training episodes of ``env_id`` as NHWC arrays in ``path`` (.npz)."""
    import jax

    import metabench

    try:
        env = metabench.make(env_id)
    except Exception as e:  # noqa: BLE001 - any failure to load the data is reported, not hidden
        raise Unavailable(f"{env_id} could not be built ({type(e).__name__}: {e}); set METABENCH_DATA to the "
                          "data root holding omniglot (e.g. export METABENCH_DATA=/work/shared/data) or "
                          "prepare it with `metabench data prepare`") from e
    sample = env.jit_sample_tasks(batch)
    keys = jax.random.split(jax.random.key(seed), steps)
    tasks = [sample(k) for k in keys]
    xs = np.stack([np.asarray(t.support[0]) for t in tasks])
    xq = np.stack([np.asarray(t.query[0]) for t in tasks])
    np.savez(path, x=np.concatenate([xs, xq], axis=2).astype(np.float32),
             ys=np.stack([np.asarray(t.support[1]) for t in tasks]).astype(np.int32),
             yq=np.stack([np.asarray(t.query[1]) for t in tasks]).astype(np.int32),
             ways=env.ways, shots=env.shots)
    return {"env": env.spec.id, "episodes": steps * batch, "images_per_episode": xs.shape[2] + xq.shape[2]}


class Worker:
    """A worker subprocess speaking JSON lines."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=str(HERE))
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (rc {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def train(self, start: int, n: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": "train", "start": start, "n": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _stats(v: list[float]) -> dict[str, float]:
    return {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def run_algo(algo: str, args: argparse.Namespace, peer_python: str, tmp: Path) -> dict[str, Any]:
    """Alternating rounds of ``algo`` on both sides; the result dict written to JSON."""
    s = SETUPS[algo]
    steps = args.steps if args.steps else s["steps"]
    warm = args.warmup
    path = tmp / f"{algo}.npz"
    data = write_episodes(s["env"], warm + args.rounds * steps, s["batch"], args.seed, path)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    mb_env = dict(env, XLA_FLAGS=(env.get("XLA_FLAGS", "") + " " + args.xla_flags).strip())
    mb_cmd = [sys.executable, str(HERE / "worker_metabench.py"), "--algo", algo, "--env", s["env"],
              "--episodes", str(path)] + [a for kv in args.set for a in ("--set", kv)]
    l2l_cmd = [peer_python, str(HERE / "worker_l2l.py"), "--algo", algo, "--episodes", str(path),
               "--threads", str(args.threads)] + s["l2l"]
    workers = {"metabench": Worker("metabench", mb_cmd, mb_env), "learn2learn": Worker("learn2learn", l2l_cmd, env)}
    try:
        for w in workers.values():  # compile / warm up on the first `warm` steps
            w.train(0, warm)
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in workers}
        for r in range(args.rounds):
            order = list(workers) if r % 2 == 0 else list(workers)[::-1]
            for name in order:
                out = workers[name].train(warm + r * steps, steps)
                out["rate"] = steps * s["batch"] / out["seconds"]
                out["load"] = os.getloadavg()[0]
                rounds[name].append(out)
                print(f"  {algo} round {r} {name:<11} {out['rate']:7.2f} episodes/s  "
                      f"(cpu {out['cpu_seconds'] / out['seconds']:.2f} cores, load {out['load']:.2f})", flush=True)
    finally:
        for w in workers.values():
            w.close()
    rates = {k: [o["rate"] for o in v] for k, v in rounds.items()}
    per_round = [a / b for a, b in zip(rates["metabench"], rates["learn2learn"])]
    ratio = float(np.median(rates["metabench"]) / np.median(rates["learn2learn"]))
    losses = {k: [loss for o in v for loss in o["losses"]] for k, v in rounds.items()}
    return {
        "algo": algo, "data": data, "steps_per_round": steps, "rounds": args.rounds, "warmup_steps": warm,
        "tasks_per_step": s["batch"], "threads": args.threads, "omp_wait_policy": args.omp_wait_policy, "xla_flags": args.xla_flags, "set": args.set,
        "episodes_per_s": {k: _stats(v) for k, v in rates.items()}, "rates": rates,
        "ratio_metabench_over_learn2learn": ratio, "per_round_ratio": _stats(per_round),
        "mean_loss_first_last_round": {k: [float(np.mean(v[:steps])), float(np.mean(v[-steps:]))]
                                       for k, v in losses.items()},
        "workers": {k: w.info for k, w in workers.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", default="protonet,maml")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="steps a round (0: per algorithm, SETUPS)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--omp-wait-policy", default="PASSIVE",
                   help="OMP_WAIT_POLICY of the workers ('' : libgomp's default, spinning; on a shared "
                        "machine its 2-thread torch steps were ~5x slower)")
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", "/work/peer_venv/bin/python"))
    p.add_argument("--xla-flags", default="", help="extra XLA_FLAGS for the metabench worker")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="metabench learner override")
    p.add_argument("--out-dir", default="benchmarks/results")
    p.add_argument("--tag", default="", help="suffix of the JSON name (a variant)")
    args = p.parse_args(argv)
    from metabench.atomic import atomic_write_json
    from metabench.harness.provenance import code_version, host_info

    algos = [a for a in args.algos.split(",") if a]
    unknown = [a for a in algos if a not in SETUPS]
    if unknown:
        p.error(f"unknown algorithm(s) {unknown}; choose from {sorted(SETUPS)}")
    if (os.cpu_count() or 1) != args.threads:
        print(f"note: {os.cpu_count()} cores but --threads {args.threads}; XLA's pool uses the core count")
    try:
        peer = check_peer(args.peer_python)
        with tempfile.TemporaryDirectory() as tmp:
            for algo in algos:
                load0 = os.getloadavg()
                res = run_algo(algo, args, args.peer_python, Path(tmp))
                e = res["episodes_per_s"]
                print(f"{algo}: metabench {e['metabench']['median']:.2f} ({e['metabench']['min']:.2f}-"
                      f"{e['metabench']['max']:.2f}) vs learn2learn {e['learn2learn']['median']:.2f} "
                      f"({e['learn2learn']['min']:.2f}-{e['learn2learn']['max']:.2f}) episodes/s: ratio "
                      f"{res['ratio_metabench_over_learn2learn']:.2f} (per round {res['per_round_ratio']['median']:.2f}, "
                      f"{res['per_round_ratio']['min']:.2f}-{res['per_round_ratio']['max']:.2f})", flush=True)
                out = Path(args.out_dir) / f"peer_{algo}{'_' + args.tag if args.tag else ''}.json"
                atomic_write_json(str(out), {
                    "benchmark": f"same-run peer benchmark, {algo}", **res, "peer": peer,
                    "load_average_start": load0, "load_average_end": os.getloadavg(), "host": host_info(),
                    "code": code_version(),
                    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                })
                print(f"-> {out}")
    except Unavailable as e:
        print(f"peer benchmark unavailable: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
