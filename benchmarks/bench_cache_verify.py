"""Cost of verified cache loads (issue 29): hash throughput, added time to the first task.

1. Throughput of the candidate content hashes on a 256 MiB buffer already in memory (best of 3):
   sha256 and blake2b (hashlib), blake2b over 16 MiB chunks in 2 threads (numpy-free
   "chunked" variant: hashlib releases the GIL), xxh3-64 / xxh3-128 (``xxhash``) and blake3
   (``blake3``, if installed; it is not a metabench dependency).
2. omniglot-lite-5w5s on the real zips (``$METABENCH_DATA``): in fresh processes, ``make`` and
   the first ``sample_task`` with ``METABENCH_VERIFY_CACHE`` on and off (alternating, warm
   page cache, a private cache built first), and in-process the content check alone
   (``integrity.check_arrays`` + ``check_record`` on the cache directory).
3. A miniImageNet-sized fixture (64/16/20 classes x 600 images, 84x84x3 uint8 = 1.27 GB, the
   pickle layout of ``bench_image_cache.py``, random pixels from a seeded Generator) in a temp
   dir deleted afterwards: cache build, the check alone (warm, and cold after
   ``posix_fadvise(DONTNEED)`` on the cache files: the disk read included), and
   ``make("mini-imagenet-5w5s")`` to the first task with verification on and off.

Targets (issue 29): added time under 10 % of the warm start on omniglot-lite; under 1 s per GB
on the 60K fixture.

Findings (2-core dev box shared with training runs, load average 6.0 at start, 6.1 at end of
the run that wrote the results file):

- Throughput (GB/s, in memory): xxh3-128 18.5, xxh3-64 18.3, blake3 5.7 (1 thread; 5.7 with
  threads: no spare core), sha256 1.4, blake2b 0.9, blake2b chunked in 2 threads 0.9 (the
  second core is busy). Chosen: xxh3-128 (``xxhash``, a small, well-kept binding; no
  cryptographic strength is needed against bit flips, and sha256 stays in ``meta.json`` for
  ``verify_cache``).
- omniglot-lite-5w5s (3.8 MB cache): the check itself 0.28 ms = 0.02 % of the warm start
  (make to first task 1.24 s with verification off, median of 5). The fresh-process medians
  differ by +63 ms (5 %) here and by -181 ms in a trial run: that difference is the noise
  of the compile on a busy box, not the check (``make`` alone: 32-43 ms either way).
- 60K fixture (1.27 GB cache, build 12.9 s): warm page cache, ``make`` 0.11-0.13 s with the
  check vs 0.033 s without: +0.09 s = 0.07 s per GB (target met); the check alone 0.081 s
  (0.064 s/GB). Cold (the cache's pages evicted first): +1.8-2.7 s (1.4-2.1 s/GB, target
  NOT met): that is the disk reading the whole file, which an unverified CPU start skips
  (the memmap is aliased, only the first task's pages are read); on an accelerator the pool
  is copied to the device at ``make`` and read in full anyway. In-process, a cold check took
  0.63 s (0.5 s/GB): the disk is shared and its speed varies.

Writes ``benchmarks/results/cache_verify.json`` atomically. Usage::

    python benchmarks/bench_cache_verify.py [--repeats 5] [--skip-mini] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from metabench.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "cache_verify.json"

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import jax, metabench
t1 = time.perf_counter()
env = metabench.make(sys.argv[1], **json.loads(sys.argv[2]))
t2 = time.perf_counter()
jax.block_until_ready(env.sample_task(jax.random.key(0), "train"))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "make_s": t2 - t1, "first_task_s": t3 - t2, "make_to_first_task_s": t3 - t1,
                  "built": getattr(getattr(env, "cache_info", None), "built", None)}))
"""


def hash_throughput(mib: int = 256, reps: int = 3) -> dict[str, Any]:
    """GB/s of each candidate on ``mib`` MiB of seeded random bytes (best of ``reps``)."""
    buf = np.random.default_rng(0).integers(0, 256, size=mib << 20, dtype=np.uint8)
    mv = memoryview(buf)

    def chunked_blake2b() -> bytes:
        parts = [mv[i : i + (16 << 20)] for i in range(0, len(mv), 16 << 20)]
        with ThreadPoolExecutor(2) as ex:
            digests = list(ex.map(lambda p: hashlib.blake2b(p).digest(), parts))
        return hashlib.blake2b(b"".join(digests)).digest()

    cands: dict[str, Callable[[], object]] = {
        "sha256 (hashlib)": lambda: hashlib.sha256(mv).digest(),
        "blake2b (hashlib)": lambda: hashlib.blake2b(mv).digest(),
        "blake2b chunked, 2 threads": chunked_blake2b,
    }
    missing = []
    try:
        import xxhash

        cands["xxh3_64 (xxhash)"] = lambda: xxhash.xxh3_64(mv).digest()
        cands["xxh3_128 (xxhash)"] = lambda: xxhash.xxh3_128(mv).digest()
    except ImportError:
        missing.append("xxhash")
    try:
        import blake3

        cands["blake3, 1 thread"] = lambda: blake3.blake3(mv).digest()
        cands["blake3, auto threads"] = lambda: blake3.blake3(mv, max_threads=blake3.blake3.AUTO).digest()
    except ImportError:
        missing.append("blake3")
    out: dict[str, Any] = {"buffer_mib": mib, "not_installed": missing, "gb_per_s": {}}
    for name, fn in cands.items():
        best = min(_timed(fn) for _ in range(reps))
        out["gb_per_s"][name] = buf.nbytes / best / 1e9
        print(f"  {name:28s} {out['gb_per_s'][name]:6.2f} GB/s", flush=True)
    return out


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_child(env_id: str, kwargs: dict[str, Any], *, verify: bool, cache: Path, timeout: float = 600) -> dict[str, Any]:
    env = {**os.environ, "METABENCH_CACHE": str(cache), "METABENCH_VERIFY_CACHE": "1" if verify else "0",
           "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    env.pop("METABENCH_COMPILE_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", _CHILD, env_id, json.dumps(kwargs)], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_alone(path: Path, reps: int, cold: bool = False) -> dict[str, Any]:
    """Seconds of the content check of cache ``path`` in this process (median of ``reps``)."""
    from metabench.data import integrity

    meta = json.loads((path / "meta.json").read_text())
    files = [path / r["file"] for r in meta["arrays"].values()] + [path / "meta.json"]
    nbytes = sum(f.stat().st_size for f in files)
    times = []
    for _ in range(reps):
        if cold:
            _drop_from_page_cache(files)
        t = time.perf_counter()
        integrity.check_record(path, meta)
        integrity.check_arrays(path, meta)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"bytes": nbytes, "seconds": times, "median_s": med, "s_per_gb": med / (nbytes / 1e9), "cold": cold}


def _drop_from_page_cache(files: list[Path]) -> None:
    """Evict these files' pages (only theirs: other users' caches are untouched)."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_starts(env_id: str, kwargs: dict[str, Any], cache: Path, repeats: int,
                cold_files: list[Path] | None = None) -> dict[str, Any]:
    """Alternating fresh-process runs with verification on and off; medians and the difference."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for i in range(repeats):
        for label in (("on", "off") if i % 2 == 0 else ("off", "on")):
            if cold_files:
                _drop_from_page_cache(cold_files)
            r = run_child(env_id, kwargs, verify=label == "on", cache=cache)
            assert r["built"] is not True, "the cache was rebuilt during the timing runs"
            runs[label].append(r)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("make_s", "first_task_s", "make_to_first_task_s")}
           for k, v in runs.items()}
    added = med["on"]["make_to_first_task_s"] - med["off"]["make_to_first_task_s"]
    return {"runs": runs, "median": med, "added_make_to_first_task_s": added,
            "added_pct_of_warm_start": 100 * added / med["off"]["make_to_first_task_s"], "cold": bool(cold_files)}


def bench_omniglot(work: Path, repeats: int) -> dict[str, Any]:
    cache = work / "cache-omniglot"
    first = run_child("omniglot-lite-5w5s", {}, verify=True, cache=cache)
    (path,) = [p for p in cache.iterdir() if p.name.startswith("omniglot-28-")]
    out = {"env": "omniglot-lite-5w5s", "build_run": first, "check_alone_warm": check_alone(path, 20),
           "warm_start": warm_starts("omniglot-lite-5w5s", {}, cache, repeats)}
    ws = out["warm_start"]["median"]["off"]["make_to_first_task_s"]
    out["check_alone_pct_of_warm_start"] = 100 * out["check_alone_warm"]["median_s"] / ws
    return out


def bench_mini(work: Path, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_image_cache import generate
    from metabench.envs.mini_imagenet import load_mini_imagenet

    from metabench.data import cache as C

    cache = work / "cache-mini"
    os.environ["METABENCH_CACHE"] = str(cache)
    t = time.perf_counter()
    sizes = generate(work / "data")
    out: dict[str, Any] = {"env": "mini-imagenet-5w5s", "pickle_bytes": sizes, "generate_s": time.perf_counter() - t}
    t = time.perf_counter()
    loaded = load_mini_imagenet(work / "data")
    out["cache_build_s"] = time.perf_counter() - t
    path = C.cache_dir() / next(p.name for p in cache.iterdir() if p.name.startswith("mini-imagenet-pickle-"))
    out["images"] = int(loaded.pool.images.shape[0])
    del loaded
    files = sorted(path.glob("*.npy")) + [path / "meta.json"]
    out["check_alone_warm"] = check_alone(path, 5)
    out["check_alone_cold"] = check_alone(path, 2, cold=True)
    kwargs = {"root": str(work / "data")}
    before = (path / "meta.json").stat().st_ino
    out["warm_start"] = warm_starts("mini-imagenet-5w5s", kwargs, cache, repeats)
    out["cold_start"] = warm_starts("mini-imagenet-5w5s", kwargs, cache, max(1, repeats // 2), cold_files=files)
    assert (path / "meta.json").stat().st_ino == before, "the cache was rebuilt during the timing runs"
    gb = out["check_alone_warm"]["bytes"] / 1e9
    out["added_s_per_gb_warm"] = out["warm_start"]["added_make_to_first_task_s"] / gb
    out["added_s_per_gb_cold"] = out["cold_start"]["added_make_to_first_task_s"] / gb
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh-process runs per setting (warm)")
    ap.add_argument("--skip-mini", action="store_true", help="skip the 1.27 GB fixture")
    ap.add_argument("--workdir", default=None, help="parent of the temp dir (default: the system temp dir)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    import jax

    work = Path(tempfile.mkdtemp(prefix="mb-bench-cache-verify-", dir=args.workdir))
    result: dict[str, Any] = {
        "benchmark": "cache_verify",
        "python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": list(os.getloadavg())},
    }
    try:
        print("hash throughput", flush=True)
        result["hash_throughput"] = hash_throughput()
        print("omniglot-lite", flush=True)
        result["omniglot_lite"] = bench_omniglot(work, args.repeats)
        print(json.dumps({k: v for k, v in result["omniglot_lite"].items() if k != "warm_start"}, indent=1), flush=True)
        if not args.skip_mini:
            print("miniImageNet-sized fixture", flush=True)
            result["mini_imagenet_fixture"] = bench_mini(work, args.repeats)
        result["load_average_at_end"] = list(os.getloadavg())
        result["status"] = "ok"
    except BaseException as e:
        result["status"] = f"error: {type(e).__name__}: {e}"
        raise
    finally:
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write_json(Path(args.out), result)
        shutil.rmtree(work, ignore_errors=True)
    summary = {k: result[k] for k in ("hash_throughput", "status")}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
