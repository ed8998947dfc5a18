"""Image cache benchmark: miniImageNet-sized pickles -> uint8 cache -> first task -> batched sampling.

Generates a synthetic dataset of the real size in the pickle layout (64/16/20 classes x 600
images, 84x84x3 uint8, ``mini-imagenet-cache-{train,val,test}.pkl``, ~1.3 GB) in a temporary
directory (deleted afterwards) and measures:

1. cache conversion: images/s of the first ``load_mini_imagenet`` (unpickle, validate, reorder,
   write the ``.npy`` cache with its sha256);
2. warm start: in a fresh process, seconds from ``metabench.make("mini-imagenet-5w5s")`` to the
   first sampled task (``make`` itself, then the first ``sample_task``, compile included);
3. batched sampling: tasks/s of ``env.jit_sample_tasks(32, "train")`` for 5-way 5-shot
   15-query 84x84 tasks (after one warm-up call).

Steps 2-3 run once per JAX constants mode: JAX's default, where a jitted function embeds the
arrays it closes over into the compiled program, and ``JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS=1``,
where they are passed as arguments. Since the sampler passes the image pool to its compiled
functions as arguments (``MetaEnv._data``), both modes should agree; before that change the
default mode embedded the 1.27 GB pool and the first compile did not finish. Each run has a
time limit and a resident-memory limit (the machine is shared); a run that exceeds either
is killed and recorded as such.

Writes ``benchmarks/results/image_cache.json`` atomically. Usage::

    python benchmarks/bench_image_cache.py [--workdir DIR] [--calls 20] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "image_cache.json"
PER_CLASS = 600

_CHILD = r"""
import json, os, sys, time
t_import = time.perf_counter()
import jax, metabench
t0 = time.perf_counter()
env = metabench.make("mini-imagenet-5w5s", root=sys.argv[1])
t1 = time.perf_counter()
task = env.sample_task(jax.random.key(0), "train")
jax.block_until_ready(task)
t2 = time.perf_counter()
calls = int(sys.argv[2])
fn = env.jit_sample_tasks(32, "train")
t3 = time.perf_counter()
jax.block_until_ready(fn(jax.random.key(1)))
t4 = time.perf_counter()
for i in range(calls):
    out = fn(jax.random.key(2 + i))
jax.block_until_ready(out)
t5 = time.perf_counter()
x = out.support[0]
print(json.dumps({
    "import_s": t0 - t_import,
    "make_s": t1 - t0,
    "first_task_s": t2 - t1,
    "make_to_first_task_s": t2 - t0,
    "batch_compile_and_first_call_s": t4 - t3,
    "batch_calls": calls,
    "batch_seconds": t5 - t4,
    "tasks_per_s": 32 * calls / (t5 - t4),
    "batch_support_shape": list(x.shape),
    "batch_query_shape": list(out.query[0].shape),
    "jax_backend": jax.default_backend(),
}))
"""


def write_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(root: Path, per_class: int = PER_CLASS) -> dict:
    """Write the three pickles (random pixels, contiguous classes in wnid order); returns sizes."""
    from metabench.envs.mini_imagenet import PICKLE_NAMES
    from metabench.envs.mini_imagenet_splits import RAVI_SPLIT

    folder = root / "mini-imagenet"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {}
    for split, wnids in RAVI_SPLIT.items():
        n = per_class * len(wnids)
        images = rng.integers(0, 256, size=(n, 84, 84, 3), dtype=np.uint8)
        class_dict = {w: list(range(i * per_class, (i + 1) * per_class)) for i, w in enumerate(wnids)}
        path = folder / PICKLE_NAMES[split][0]
        with open(path, "wb") as f:
            pickle.dump({"image_data": images, "class_dict": class_dict}, f, protocol=4)
        sizes[path.name] = path.stat().st_size
        del images
    return sizes


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(root: Path, calls: int, timeout: float, simplified: bool, max_rss: float) -> dict:
    """Run ``_CHILD`` in a fresh process; killed past ``timeout`` s or ``max_rss`` bytes (shared machine)."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    env["JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS"] = "1" if simplified else "0"
    t = time.perf_counter()
    peak = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), str(calls)], stdout=out, stderr=err, env=env)
        verdict = None
        while proc.poll() is None:
            peak = max(peak, _rss_bytes(proc.pid))
            if time.perf_counter() - t > timeout:
                verdict = f"killed after {timeout:.0f} s (time limit)"
            elif peak > max_rss:
                verdict = f"killed at {peak / 2**30:.1f} GiB resident (limit {max_rss / 2**30:.0f} GiB)"
            if verdict:
                proc.kill()
                proc.wait()
                return {"status": verdict, "wall_s": time.perf_counter() - t, "peak_rss_gib": peak / 2**30}
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        return {"status": f"failed (exit {proc.returncode})", "stderr_tail": stderr[-1500:]}
    return {"status": "ok", "peak_rss_gib": peak / 2**30, **json.loads(stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=None, help="where to generate the data (default: a temp dir)")
    ap.add_argument("--calls", type=int, default=20, help="timed batched calls")
    ap.add_argument("--timeout", type=float, default=600, help="limit per warm-start run, seconds")
    ap.add_argument("--per-class", type=int, default=PER_CLASS, help="images per class (600 = the real size)")
    ap.add_argument("--out", default=str(RESULTS), help="results JSON")
    ap.add_argument("--max-rss-gib", type=float, default=8.0, help="kill a warm-start run past this resident size")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mb-bench-image-cache-", dir=args.workdir))
    os.environ["METABENCH_CACHE"] = str(work / "cache")
    result: dict = {
        "benchmark": "image_cache",
        "dataset": "synthetic miniImageNet-sized pickles (64/16/20 classes x 600 images, 84x84x3 uint8)",
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": list(os.getloadavg())},
    }
    try:
        import jax

        from metabench.envs.mini_imagenet import load_mini_imagenet

        result["jax"] = jax.__version__
        result["numpy"] = np.__version__
        t = time.perf_counter()
        result["images_per_class"] = args.per_class
        result["pickle_bytes"] = generate(work / "data", args.per_class)
        result["generate_s"] = time.perf_counter() - t

        t = time.perf_counter()
        data = load_mini_imagenet(work / "data")
        convert_s = time.perf_counter() - t
        n = int(data.pool.images.shape[0])
        result["conversion"] = {"images": n, "seconds": convert_s, "images_per_s": n / convert_s}
        t = time.perf_counter()
        again = load_mini_imagenet(work / "data")
        result["warm_load_in_process_s"] = time.perf_counter() - t
        assert again.data_hash == data.data_hash
        del data, again

        result["warm_start"] = {}
        for label, simplified in (("simplified_constants", True), ("default_constants", False)):
            result["warm_start"][label] = run_child(work / "data", args.calls, args.timeout, simplified, args.max_rss_gib * 2**30)
            print(label, json.dumps(result["warm_start"][label], indent=1), flush=True)
        result["load_average_at_end"] = list(os.getloadavg())
        result["status"] = "ok"
    except BaseException as e:  # record what happened, then re-raise
        result["status"] = f"error: {type(e).__name__}: {e}"
        raise
    finally:
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_atomic(Path(args.out), result)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
