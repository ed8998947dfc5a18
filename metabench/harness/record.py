"""Assembly of the result record (the leaderboard JSON, ``leaderboard/schema.json``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from metabench.harness import provenance
from metabench.harness.metrics import metric_for, summarize, summarize_curve
from metabench.harness.per_task import encode_per_task

#: 1.1 adds ``per_task`` (``metabench.harness.per_task``); 1.0 files are still read
SCHEMA_VERSION = "1.1"
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1")


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (tuples -> lists, callables and paths -> str; a flax module, a
    learner's ``backbone``, as ``backbone_registry.describe_backbone``'s class path and fields)."""
    return json.loads(json.dumps(obj, default=_plain))


def _plain(obj: Any) -> Any:
    from metabench.learner import is_flax_module

    if is_flax_module(obj):
        from metabench.baselines.backbone_registry import describe_backbone

        return describe_backbone(obj)
    return str(obj)


def build_record(
    *,
    name: str,
    env: Any,
    learner_id: str,
    learner: Any,
    overrides: dict[str, Any],
    config_hash: str,
    seed: int,
    run: dict[str, Any],
    test_curves: np.ndarray,
    validation: dict[str, Any],
    train: dict[str, Any],
    eval_wall_s: float,
    mesh: Any = None,
    code: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result record of one run; ``test_curves: float[n_tasks, S]`` are the per-task curves.

    ``code``: the code version captured when the run started (default: now).
    """
    kind = env.spec.kind
    metric, higher = metric_for(kind)
    n, steps = test_curves.shape
    headline = summarize(test_curves[:, -1])
    curves = []
    if steps > 1:
        curves.append({"name": f"test {metric} vs adaptation step", "metric": metric, "split": "test",
                       **summarize_curve(test_curves)})
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "env": {
            "id": env.spec.id,
            "kind": kind,
            "spec": jsonable(env.spec.to_dict()),
            "eval_hash": env.eval_hash("test"),
            "eval_tasks": int(env.num_eval_tasks),
        },
        "learner": {
            "id": learner_id,
            "class": f"{type(learner).__module__}:{type(learner).__qualname__}",
            "config": jsonable(learner.config.to_dict()),
            "overrides": jsonable(dict(overrides)),
        },
        "config_hash": config_hash,
        "seed": seed,
        "run": run,
        "metrics": [{
            "name": metric,
            "split": "test",
            "higher_is_better": higher,
            "adaptation_step": steps - 1,
            **headline,
        }],
        "curves": curves,
        "per_task": encode_per_task(test_curves[:, -1], metric=metric, adaptation_step=steps - 1),
        "validation": validation,
        "train": train,
        "eval": {"wall_time_s": eval_wall_s, "tasks_per_s": n / eval_wall_s if eval_wall_s > 0 else None},
        "memory": {"peak_rss_bytes": provenance.peak_rss_bytes(), "device": provenance.device_memory()},
        # the mesh a sharded learner built itself: ES's ``pop_mesh``, DMAML's ``worker_mesh``
        "device": provenance.device_info(mesh if mesh is not None else
                                         getattr(learner, "pop_mesh", None) or getattr(learner, "worker_mesh", None)),
        "versions": provenance.package_versions(),
        "code": code if code is not None else provenance.code_version(),
        "data_hash": env.spec.data_hash,
        "timestamp": provenance.timestamp(),
        "host": provenance.host_info(),
    }
