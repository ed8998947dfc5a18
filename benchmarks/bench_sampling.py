"""Task-sampling throughput: metabench's jitted gather vs a learn2learn-style numpy sampler.

Omniglot 5-way 1-shot, 15 queries, float32 28x28x1 with rotation classes, on the real lite
data when present (``$METABENCH_DATA`` or ``--root``), else synthetic uint8 images of the same
shape (242 characters x 20 drawings, lite split). Measured in the same run:

- ``metabench batched``: ``env.jit_sample_tasks(32)(key)``, ``block_until_ready``.
- ``metabench per-task``: the jitted ``env.sample_task(key, "train")``, one task per call.
- ``numpy l2l-style`` (the reference): per task, choose ``ways`` classes, choose ``shots +
  queries`` samples per class, load each sample (rotate, float32 / 255), stack, remap labels
  to 0..N-1 -- the way learn2learn's ``TaskDataset`` with ``NWays``/``KShots``/``LoadData``/
  ``RemapLabels`` does it, but from the same in-memory uint8 array (no disk, no PIL).
- ``numpy vectorised``: the same with one fancy-indexing gather per task (a stronger baseline).

Each method runs for ``--seconds`` per repeat, ``--repeats`` times, interleaved; the best
repeat is reported (tasks/s). Writes ``benchmarks/results/sampling.json`` atomically, keyed by
JAX backend, with machine info.

    python benchmarks/bench_sampling.py [--root DIR] [--seconds 1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import numpy as np

import metabench
from metabench.classification import ClassificationEnv, ImagePool, SplitTable
from metabench.envs import omniglot_splits as S
from metabench.errors import DataError
from metabench.spec import EnvSpec

WAYS, SHOTS, QUERIES, BATCH = 5, 1, 15, 32
RESULTS = Path(__file__).resolve().parent / "results" / "sampling.json"


class SyntheticOmniglot(ClassificationEnv):
    """Random uint8 images shaped like omniglot-lite: 242 characters x 20, lite split sizes, rotations."""

    def _load(self) -> tuple[ImagePool, Mapping[str, SplitTable], str]:
        rng = np.random.default_rng(0)
        sizes = {"train": 153, "val": 22, "test": 67}
        groups = [rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8) for _ in range(sum(sizes.values()))]
        pool = ImagePool.from_groups(groups, [f"c{i}" for i in range(len(groups))])
        start, tables = 0, {}
        for split, n in sizes.items():
            tables[split] = SplitTable.of(range(start, start + n), S.ROTATIONS)
            start += n
        return pool, tables, "synthetic"


def load_env(root: str | None) -> tuple[ClassificationEnv, str]:
    try:
        env = metabench.make("omniglot-lite-5w1s", **({"root": root} if root else {}))
        return env, f"real omniglot-lite ({env.data_dir})"
    except DataError as e:
        print(f"real data not available ({str(e)[:120]}...); using synthetic images", file=sys.stderr)
        spec = EnvSpec(id="synthetic-omniglot-5w1s", entry_point="bench:SyntheticOmniglot", kind="classification")
        return SyntheticOmniglot(spec, ways=WAYS, shots=SHOTS, queries=QUERIES), "synthetic (same shapes)"


class NumpyL2LSampler:
    """learn2learn TaskDataset-style sampler over the env's in-memory uint8 pool (host numpy)."""

    def __init__(self, env: ClassificationEnv, split: str = "train"):
        self.images = np.asarray(env._images)  # uint8[N, 28, 28, 1]
        self.offsets = np.asarray(env._offsets)
        self.counts = np.asarray(env._counts)
        t = env.tables[split]
        self.base, self.rot = np.asarray(t.base), np.asarray(t.rot)
        # learn2learn keeps a labels_to_indices dict; here: class -> (base row indices, rotation)
        self.labels_to_indices = {
            c: (self.offsets[b] + np.arange(self.counts[b]), int(r)) for c, (b, r) in enumerate(zip(self.base, self.rot))
        }
        self.n, self.k, self.q = env.ways, env.shots, env.queries

    def load(self, index: int, rot: int) -> np.ndarray:
        """One sample, as LoadData + a rotation transform + ToTensor would produce it."""
        return np.rot90(self.images[index], rot).astype(np.float32) / 255.0

    def sample(self, rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        classes = rng.choice(len(self.labels_to_indices), self.n, replace=False)  # NWays
        data, labels = [], []
        for c in classes:  # KShots: k + q samples per class, then LoadData per sample
            idx, rot = self.labels_to_indices[int(c)]
            for i in rng.choice(idx, self.k + self.q, replace=False):
                data.append(self.load(int(i), rot))
                labels.append(int(c))
        remap = {}
        y = np.array([remap.setdefault(lab, len(remap)) for lab in labels], dtype=np.int32)  # RemapLabels
        x = np.stack(data).reshape(self.n, self.k + self.q, *data[0].shape)
        y = y.reshape(self.n, self.k + self.q)
        sx, sy = x[:, : self.k].reshape(-1, *x.shape[2:]), y[:, : self.k].reshape(-1)
        qx, qy = x[:, self.k :].reshape(-1, *x.shape[2:]), y[:, self.k :].reshape(-1)
        return (sx, sy), (qx, qy)

    def sample_vectorised(self, rng: np.random.Generator):  # type: ignore[no-untyped-def]
        """The same task with one gather per task (still numpy, host)."""
        classes = rng.choice(len(self.base), self.n, replace=False)
        base = self.base[classes]
        pick = np.argsort(rng.random((self.n, int(self.counts.max()))), axis=1)[:, : self.k + self.q]
        pick = np.minimum(pick, self.counts[base][:, None] - 1)  # counts are equal for Omniglot
        x = self.images[self.offsets[base][:, None] + pick]  # [n, k+q, H, W, C]
        out = np.empty(x.shape, np.float32)
        for j, r in enumerate(self.rot[classes]):
            out[j] = np.rot90(x[j], int(r), axes=(1, 2))
        out /= 255.0
        y = np.arange(self.n, dtype=np.int32)
        return (out[:, : self.k].reshape(-1, *x.shape[2:]), np.repeat(y, self.k)), (
            out[:, self.k :].reshape(-1, *x.shape[2:]),
            np.repeat(y, self.q),
        )


def rate(fn: Callable[[int], None], tasks_per_call: int, seconds: float) -> float:
    """Tasks per second of ``fn(i)`` called repeatedly for about ``seconds``."""
    calls, start = 0, time.perf_counter()
    while True:
        fn(calls)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * tasks_per_call / elapsed


def machine_info() -> dict[str, object]:
    dev = jax.devices()[0]
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "jax_backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def write_atomic(path: Path, obj: object) -> None:
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


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="data root (default: $METABENCH_DATA)")
    ap.add_argument("--seconds", type=float, default=1.0, help="duration of one timed repeat per method")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    env, data = load_env(args.root)
    batched = env.jit_sample_tasks(BATCH, "train")
    single = jax.jit(env.sample_task, static_argnames="split")
    ref = NumpyL2LSampler(env)
    keys = jax.random.split(jax.random.key(0), 4096)
    rng = np.random.default_rng(0)

    # warm up (compilation) and sanity-check shapes/dtypes against the reference
    jax.block_until_ready(batched(keys[0]))
    t = jax.block_until_ready(single(keys[0], split="train"))
    (sx, sy), (qx, qy) = ref.sample(rng)
    assert sx.shape == t.support[0].shape and qx.shape == t.query[0].shape and sx.dtype == t.support[0].dtype
    assert np.array_equal(np.sort(qy), np.sort(np.asarray(t.query[1])))
    ref.sample_vectorised(rng)

    methods: dict[str, tuple[Callable[[int], None], int]] = {
        "metabench_batched_jit": (lambda i: jax.block_until_ready(batched(keys[i % 4096])), BATCH),
        "metabench_per_task_jit": (lambda i: jax.block_until_ready(single(keys[i % 4096], split="train")), 1),
        "numpy_l2l_style": (lambda i: ref.sample(rng), 1),
        "numpy_vectorised": (lambda i: ref.sample_vectorised(rng), 1),
    }
    runs: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.repeats):  # interleaved repeats: load changes hit every method alike
        for name, (fn, per_call) in methods.items():
            runs[name].append(rate(fn, per_call, args.seconds))
    best = {m: max(r) for m, r in runs.items()}

    ref_rate = best["numpy_l2l_style"]
    ratios = {f"{m}_over_numpy_l2l_style": best[m] / ref_rate for m in best if m != "numpy_l2l_style"}
    ratios["metabench_batched_jit_over_numpy_vectorised"] = best["metabench_batched_jit"] / best["numpy_vectorised"]
    # the same ratio from each interleaved repeat (robust to load drifting between repeats)
    paired = [b / r for b, r in zip(runs["metabench_batched_jit"], runs["numpy_l2l_style"])]
    ratios["batched_over_l2l_per_repeat_median"] = float(np.median(paired))

    print(f"task: omniglot 5-way 1-shot, 15 queries, float32 28x28x1, rotations; data: {data}")
    print(f"backend: {jax.default_backend()} ({jax.devices()[0]}), best of {args.repeats} x {args.seconds:.1f}s")
    print(f"{'method':<28}{'tasks/s':>12}{'x numpy l2l':>14}")
    for m, r in best.items():
        print(f"{m:<28}{r:>12.0f}{r / ref_rate:>14.2f}")
    print(f"batched / numpy vectorised: {ratios['metabench_batched_jit_over_numpy_vectorised']:.2f}x")
    print(f"batched / numpy l2l-style per repeat: {', '.join(f'{p:.2f}' for p in paired)} (median {np.median(paired):.2f})")
    target = ratios["metabench_batched_jit_over_numpy_l2l_style"] >= 4.0
    print(f"target batched >= 4x numpy l2l-style: {'met' if target else 'NOT met'}")

    record = {
        "task": {"env": env.spec.id, "ways": WAYS, "shots": SHOTS, "queries": QUERIES, "image": [28, 28, 1], "dtype": "float32"},
        "data": data,
        "batch": BATCH,
        "tasks_per_s": best,
        "tasks_per_s_per_repeat": runs,
        "ratios": ratios,
        "target_batched_ge_4x_reference": target,
        "method": f"best of {args.repeats} interleaved repeats of {args.seconds}s each; block_until_ready per call",
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    results: dict[str, object] = {}
    if args.out.exists():
        try:
            results = json.loads(args.out.read_text())
        except ValueError:
            results = {}
    by_backend = results.get("runs") if isinstance(results.get("runs"), dict) else {}
    by_backend[jax.default_backend()] = record  # type: ignore[index]
    write_atomic(args.out, {"benchmark": "task sampling throughput", "runs": by_backend})
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
