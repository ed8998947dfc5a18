"""Every constraint of the result schema is enforced: one violation per constrained field.

The schema is walked; for every property with a ``type``, ``minimum``, ``pattern``, ``enum``,
``const``, ``format`` or ``minItems`` and every ``required`` key, a real record is broken in
exactly that place and the error must name that path. A constraint the walk finds but no
record could exercise fails the coverage check at the end.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from metabench.leaderboard.formats import FORMAT_CHECKER
from metabench.leaderboard.schema import SCHEMA, schema_errors

Path_ = tuple[Any, ...]


def _bad_type_value(types: list[str]) -> Any:
    """A value of a JSON type outside ``types`` (1.5 breaks "integer" but not "number")."""
    kinds = {"object": {"bad": 1}, "string": "bad", "number": 1.5, "array": [1], "boolean": True}
    return next(v for k, v in kinds.items() if k not in types)


def constraints(schema: dict[str, Any], path: Path_ = ()) -> Iterator[tuple[str, Path_, Any]]:
    """``(what, path, bad value or key)`` for every constraint (``path``: keys and ``0`` for array items)."""
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        yield "type", path, _bad_type_value(types)
    if "minimum" in schema:
        yield "minimum", path, schema["minimum"] - 1
    if "pattern" in schema:
        yield "pattern", path, "!! not matching !!"
    if "enum" in schema:
        yield "enum", path, "not-one-of-them"
    if "const" in schema:
        yield "const", path, "not-the-constant"
    if "format" in schema:
        yield "format", path, "not-a-date"
    if "minItems" in schema:
        yield "minItems", path, []
    for key in schema.get("required", []):
        yield "required", path, key
    for key, sub in schema.get("properties", {}).items():
        yield from constraints(sub, (*path, key))
    if isinstance(schema.get("items"), dict):
        yield from constraints(schema["items"], (*path, 0))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from constraints(schema["additionalProperties"], (*path, "__extra__"))


ALL = list(constraints(SCHEMA))


def _get(record: Any, path: Path_) -> Any:
    """The value at ``path`` (None where the record has nothing there, e.g. an empty array)."""
    node = record
    for key in path:
        if isinstance(node, list) and isinstance(key, int) and node:
            node = node[key]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _apply(record: dict[str, Any], what: str, path: Path_, bad: Any) -> bool:
    """Break ``record`` at ``path``; False when the record has nothing there to break."""
    if what == "required":
        target = _get(record, path)
        if not isinstance(target, dict) or bad not in target:
            return False
        del target[bad]
        return True
    parent = _get(record, path[:-1]) if path else None
    if isinstance(parent, list) and parent:
        parent[0] = bad
    elif isinstance(parent, dict):
        parent[path[-1]] = bad
    else:
        return False
    return True


def _where(path: Path_) -> str:
    return "/".join(map(str, path)) or "<root>"


@pytest.mark.parametrize("what, path, bad", ALL, ids=[f"{w}:{_where(p)}" for w, p, _ in ALL])
def test_each_constraint_is_enforced(records: Any, what: str, path: Path_, bad: Any) -> None:
    if what == "type" and not path:  # the record itself must be an object
        assert any(e.startswith("<root>:") for e in schema_errors(bad))
        return
    exercised = False
    for rec in records.values():
        for version in ("1.1", "1.0"):
            r = copy.deepcopy(json.loads(json.dumps(rec)))
            r["schema_version"] = version
            if version == "1.0":
                r.pop("per_task")
            if path and path[0] == "per_task" and version == "1.0":
                continue
            if not _apply(r, what, path, bad):
                continue
            errors = schema_errors(r)
            where = _where(path)
            if what == "required":
                assert f"{where}: {bad!r} is a required property" in errors, (what, path, errors)
            else:
                assert any(e.startswith(f"{where}:") for e in errors), (what, path, errors)
            exercised = True
    # each case checks itself (a module-level tally breaks under pytest-xdist, which spreads the
    # cases over workers); the extra-key constraints are exercised by test_extra_key_values_are_integers
    assert exercised or "__extra__" in path, f"no record exercised the constraint {what} at {_where(path)}"




def test_extra_key_values_are_integers(records: Any) -> None:
    r = json.loads(json.dumps(records["regression"]))
    r["memory"]["device"] = {"peak_bytes_in_use": "lots"}
    r["device"]["mesh"] = {"pop": 1.5}
    errors = schema_errors(r)
    assert any(e.startswith("memory/device/peak_bytes_in_use:") for e in errors)
    assert any(e.startswith("device/mesh/pop:") for e in errors)


def test_timestamp_format_is_enforced(records: Any) -> None:
    """``format`` was an annotation only: ``"not-a-date"`` validated before the format checker."""
    r = json.loads(json.dumps(records["regression"]))
    assert schema_errors(r) == []
    for bad in ("not-a-date", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-12-03T16:48:28",
                "2026-12-03", "2026-12-03T25:00:00Z", "2026-12-03T16:48:28+24:00"):
        r["timestamp"] = bad
        assert any(e.startswith("timestamp:") for e in schema_errors(r)), bad
    for good in ("2026-12-03T16:48:28+00:00", "2026-12-03T16:48:28.123456Z", "2026-12-03 16:48:28-05:30",
                 "2016-12-31T23:59:60Z"):
        r["timestamp"] = good
        assert schema_errors(r) == [], good
    assert FORMAT_CHECKER.conforms(5, "date-time")  # non-strings are the type check's business


def test_versions_1_0_and_1_1(records: Any) -> None:
    """1.0 files (no per-task values) still validate; from 1.1 on the block is required."""
    r = json.loads(json.dumps(records["classification"]))
    assert r["schema_version"] == "1.1" and schema_errors(r) == []
    del r["per_task"]
    assert any("'per_task' is a required property" in e for e in schema_errors(r))
    r["schema_version"] = "1.0"
    assert schema_errors(r) == []
    r["schema_version"] = "1.2"
    assert any(e.startswith("schema_version:") for e in schema_errors(r))


def test_committed_results_validate() -> None:
    """Every committed result file (1.0 and 1.1) matches the schema."""
    from pathlib import Path

    from metabench.leaderboard.store import scan_results

    good, bad = scan_results(Path(__file__).resolve().parents[2] / "leaderboard" / "results")
    assert good and not bad, bad


def test_long_numeric_arrays_are_checked_item_by_item(records: Any) -> None:
    """The items past the first of per-task values and curves are checked outside jsonschema:
    same wording, every bad item named, the record left as it was."""
    r = json.loads(json.dumps(records["regression"]))
    r["per_task"]["values"][3] = "x"
    r["per_task"]["values"][7] = True
    r["curves"][0]["x"][1] = 1.5
    r["curves"][0]["mean"][-1] = None
    errors = schema_errors(r)
    assert "per_task/values/3: 'x' is not of type 'number'" in errors
    assert "per_task/values/7: True is not of type 'number'" in errors
    assert "curves/0/x/1: 1.5 is not of type 'integer'" in errors
    assert f"curves/0/mean/{len(r['curves'][0]['mean']) - 1}: None is not of type 'number'" in errors
    assert r["per_task"]["values"][3] == "x" and len(r["per_task"]["values"]) == 20
    ok = json.loads(json.dumps(records["regression"]))
    ok["curves"][0]["x"][1] = 1.0  # JSON Schema: 1.0 is an integer
    assert schema_errors(ok) == []
