"""Result store: schema, atomic writes, concurrent writers, bad files reported by name."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from metabench.leaderboard import SCHEMA, ResultError, load_result, read_results, schema_errors, schema_json, write_result

ROOT = Path(__file__).resolve().parents[2]


def test_schema_file_is_the_packaged_schema() -> None:
    on_disk = (ROOT / "leaderboard" / "schema.json").read_text()
    assert on_disk == schema_json(), "regenerate: python -m metabench.leaderboard.schema > leaderboard/schema.json"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_real_records_validate_and_round_trip(records: Any, tmp_path: Path) -> None:
    for rec in records.values():
        assert schema_errors(rec) == []
        path = write_result(rec, tmp_path)
        assert path.name == f"{rec['name']}.json" and load_result(path) == rec
    names = [p.name for p, _ in read_results(tmp_path)]
    assert len(names) == 2 and all("__s0.json" in n for n in names)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_record_content(records: Any) -> None:
    rec = records["regression"]
    for key in ("python", "jax", "jaxlib", "flax", "optax", "numpy"):
        assert rec["versions"][key]
    assert rec["env"]["spec"]["id"] == "sinusoid-5s-v0" and rec["data_hash"] == "synthetic"
    assert rec["code"]["package_version"] and rec["host"]["hostname"] and rec["device"]["backend"] == "cpu"
    assert rec["learner"]["config"]["meta_batch"] == 4


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda r: r.pop("metrics"), "'metrics' is a required property"),
        (lambda r: r["metrics"][0].update(ci95=-1.0), "metrics/0/ci95"),
        (lambda r: r.update(schema_version="0.9"), "schema_version"),
        (lambda r: r["env"].update(eval_hash="xyz"), "env/eval_hash"),
    ],
)
def test_invalid_records_are_refused(records: Any, tmp_path: Path, mutate: Any, where: str) -> None:
    rec = json.loads(json.dumps(records["regression"]))
    mutate(rec)
    assert any(where in e for e in schema_errors(rec))
    with pytest.raises(ResultError, match="does not match the schema"):
        write_result(rec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_files_are_reported_by_name(records: Any, tmp_path: Path) -> None:
    good = write_result(records["regression"], tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    bad = json.loads(good.read_text())
    del bad["seed"]
    (tmp_path / "noseed.json").write_text(json.dumps(bad))
    renamed = tmp_path / "renamed.json"
    renamed.write_text(good.read_text())
    with pytest.raises(ResultError) as e:
        read_results(tmp_path)
    msg = str(e.value)
    assert "3 result file(s)" in msg
    for name in ("broken.json", "noseed.json", "renamed.json"):
        assert name in msg
    assert good.name not in msg
    assert "'seed' is a required property" in msg and "does not match the record's name" in msg
    assert set(map(Path, e.value.bad)) == {tmp_path / "broken.json", tmp_path / "noseed.json", renamed}


def test_concurrent_thread_writers_never_lose_or_corrupt(records: Any, variant: Any, tmp_path: Path) -> None:
    recs = [variant(records["regression"], seed=s) for s in range(8)]
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for _ in range(15):
                write_result(recs[i], tmp_path)  # own file
                write_result(recs[(i + 1) % 8], tmp_path)  # a file another thread writes too
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = read_results(tmp_path)
    assert sorted(r["seed"] for _, r in got) == list(range(8))
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".json") or p.name.startswith(".")] == []


_WRITER = """
import json, sys
from metabench.leaderboard.store import write_result
rec = json.loads(open(sys.argv[1]).read())
for i in range(40):
    rec["seed"] = int(sys.argv[2]) + (i % 4)
    rec["name"] = rec["name"].rsplit("__s", 1)[0] + f"__s{rec['seed']}"
    write_result(rec, sys.argv[3])
"""


def test_two_processes_writing_at_once(records: Any, tmp_path: Path) -> None:
    src = tmp_path / "record.json"
    src.write_text(json.dumps(records["regression"]))
    out = tmp_path / "results"
    # seeds 0-3 and 2-5: both processes write s2 and s3 many times
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(src), str(s), str(out)]) for s in (0, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    got = read_results(out)
    assert sorted(r["seed"] for _, r in got) == [0, 1, 2, 3, 4, 5]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
