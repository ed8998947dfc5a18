"""The JSON Schema (draft 2020-12) of one result record, and validation against it.

The schema lives here as data so that an installed metabench can validate without the
repository; ``leaderboard/schema.json`` is this dict written out (a test keeps them equal;
``python -m metabench.leaderboard.schema > leaderboard/schema.json`` regenerates it).
Bump ``SCHEMA_VERSION`` (and accept the old versions explicitly) on any change.

Versions: 1.0; 1.1 adds ``per_task`` (the headline metric of every test task), required
from 1.1 on and absent from 1.0 files, which are still read. Formats (``date-time``) are
enforced by ``metabench.leaderboard.formats.FORMAT_CHECKER``: a JSON Schema validator only
annotates formats unless it is given a format checker.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from metabench.harness.record import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION
from metabench.leaderboard.formats import FORMAT_CHECKER

_num = {"type": "number"}
_int0 = {"type": "integer", "minimum": 0}
_str = {"type": "string"}
_opt_num = {"type": ["number", "null"]}
_opt_str = {"type": ["string", "null"]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None, *, extra: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": extra,
    }


_summary = {"mean": _num, "ci95": {"type": "number", "minimum": 0}, "n_tasks": {"type": "integer", "minimum": 1}}
_per_task = _obj({
    "metric": _str,
    "split": _str,
    "adaptation_step": _int0,
    "dtype": {"const": "float32"},
    "values": {"type": "array", "minItems": 1, "items": _num},
})
_curve = _obj({
    "name": _str,
    "metric": _str,
    "x": {"type": "array", "items": {"type": "integer"}},
    "mean": {"type": "array", "items": _num},
    "ci95": {"type": "array", "items": _num},
    "n_tasks": {"type": "integer", "minimum": 1},
}, {"split": _str})

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://metabench.dev/schema/result-{SCHEMA_VERSION}.json",
    "title": "metabench result",
    "description": "One run of one learner on one env, evaluated on the env's frozen test tasks.",
    **_obj({
        "schema_version": {"enum": list(READABLE_SCHEMA_VERSIONS)},
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+__[A-Za-z0-9_.\-]+__[0-9a-f]{8}__s[0-9]+$"},
        "env": _obj({
            "id": _str,
            "kind": {"enum": ["classification", "regression", "rl"]},
            "spec": _obj({"id": _str, "entry_point": _str, "kind": _str, "kwargs": {"type": "object"}}),
            "eval_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "eval_tasks": {"type": "integer", "minimum": 1},
        }),
        "learner": _obj({"id": _str, "config": _obj({"meta_batch": {"type": "integer", "minimum": 1}}),
                         "overrides": {"type": "object"}}, {"class": _str}),
        "config_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "seed": _int0,
        "run": _obj({"steps": {"type": "integer", "minimum": 1}, "meta_batch": {"type": "integer", "minimum": 1},
                     "val_every": _int0, "val_tasks": _int0},
                    {"checkpoint_every": _int0, "eval_batch": _int0, "resumed_from": {"type": ["integer", "null"]}}),
        "metrics": {"type": "array", "minItems": 1, "items": _obj(
            {"name": _str, **_summary, "higher_is_better": {"type": "boolean"}},
            {"split": _str, "std": {"type": "number", "minimum": 0}, "adaptation_step": _int0},
        )},
        "curves": {"type": "array", "items": _curve},
        "validation": _obj({
            "metric": _str,
            "history": {"type": "array", "items": _obj(
                {"step": {"type": "integer", "minimum": 1}, "value": _num},
                {"ci95": _opt_num, "train_loss": _opt_num},
            )},
        }, {"best_step": {"type": ["integer", "null"]}, "best_value": _opt_num, "n_tasks": _int0,
            "higher_is_better": {"type": "boolean"}, "split": _str}),
        "train": _obj({"steps": {"type": "integer", "minimum": 1}, "wall_time_s": {"type": "number", "minimum": 0},
                       "tasks_per_s": _opt_num},
                      {"tasks": _int0, "validation_time_s": _opt_num, "final_loss": _opt_num}),
        "eval": _obj({"wall_time_s": {"type": "number", "minimum": 0}, "tasks_per_s": _opt_num}),
        "memory": _obj({"peak_rss_bytes": _int0,
                        "device": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}}}),
        "device": _obj({"backend": _str, "device_kind": _opt_str, "device_count": _int0,
                        "mesh": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}}},
                       {"process_count": {"type": "integer", "minimum": 1}}),
        "versions": _obj({k: _opt_str for k in ("python", "jax", "jaxlib", "flax", "optax", "numpy")},
                         {"metabench": _opt_str}),
        "code": _obj({"package_version": _str, "git_revision": _opt_str,
                      "git_dirty": {"type": ["boolean", "null"]}}),
        "data_hash": _opt_str,
        "timestamp": {"type": "string", "format": "date-time"},
        "host": _obj({"hostname": _str, "cpu": _opt_str, "cpu_count": {"type": ["integer", "null"]}},
                     {"platform": _str}),
    }, {"per_task": _per_task}),
    # from 1.1 on every record carries its per-task values
    "if": {"properties": {"schema_version": {"const": "1.0"}}},
    "else": {"required": ["per_task"]},
}


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(SCHEMA, format_checker=FORMAT_CHECKER)


def _is(kind: str, v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if kind == "integer":
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    return isinstance(v, (int, float))


def _bulk(container: dict[str, Any], key: str, kind: str, where: str, errors: list[str]) -> None:
    """Check the items after the first of ``container[key]`` here and leave the validator one
    (jsonschema descends into every array item: 600 per-task values cost ~10 ms a file)."""
    arr = container.get(key)
    if not isinstance(arr, list) or len(arr) < 2:
        return
    for i, v in enumerate(arr[1:], 1):
        if not _is(kind, v):
            errors.append(f"{where}/{i}: {v!r} is not of type {kind!r}")
    container[key] = arr[:1]


def _without_bulk(record: Any) -> tuple[Any, list[str]]:
    """``record`` with its long numeric arrays cut to one item (a copy along those paths), and
    the errors of the items cut off, worded as the validator words them."""
    if not isinstance(record, dict):
        return record, []
    errors: list[str] = []
    out = dict(record)
    if isinstance(out.get("per_task"), dict):
        out["per_task"] = dict(out["per_task"])
        _bulk(out["per_task"], "values", "number", "per_task/values", errors)
    if isinstance(out.get("curves"), list):
        out["curves"] = [dict(c) if isinstance(c, dict) else c for c in out["curves"]]
        for j, c in enumerate(out["curves"]):
            if isinstance(c, dict):
                for key, kind in (("x", "integer"), ("mean", "number"), ("ci95", "number")):
                    _bulk(c, key, kind, f"curves/{j}/{key}", errors)
    return out, errors


def schema_errors(record: Any) -> list[str]:
    """Every way ``record`` breaks the schema, as ``"path: message"`` lines (empty when valid)."""
    trimmed, bulk = _without_bulk(record)
    errors = sorted(_validator().iter_errors(trimmed), key=lambda e: list(map(str, e.absolute_path)))
    return sorted([f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors] + bulk)


def schema_json() -> str:
    return json.dumps(SCHEMA, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(schema_json(), end="")
