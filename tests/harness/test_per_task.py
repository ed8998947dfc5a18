"""The per-task block of a result (schema 1.1): exact float32 values, compact text."""

from __future__ import annotations

import json

import numpy as np

from metabench.harness.per_task import decode_per_task, encode_per_task


def test_round_trip_is_exact_in_float32_and_short() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(0, 26, 300) / 25, rng.normal(-4, 2, 300)]).astype(np.float32)
    block = encode_per_task(values, metric="accuracy", adaptation_step=3)
    text = json.dumps(block)
    back = decode_per_task(json.loads(json.dumps({"per_task": block})))
    assert back is not None and back.dtype == np.float64
    np.testing.assert_array_equal(back.astype(np.float32), values)
    assert "0.9599999785" not in text  # float32 0.96 is written 0.96, not its float64 expansion
    assert len(text) < 600 * 13
    assert (block["metric"], block["adaptation_step"], block["dtype"], block["split"]) == ("accuracy", 3, "float32", "test")


def test_records_without_the_block_decode_to_none() -> None:
    assert decode_per_task({"schema_version": "1.0"}) is None


def test_a_harness_run_stores_every_test_task(tiny: object, tmp_path: object) -> None:
    import metabench
    from metabench.harness import run

    env = metabench.make(metabench.spec("sinusoid-5s").replace(eval_tasks=20))
    res = run(env, "tiny-ridge", steps=2, val_every=0, out_dir=tmp_path, progress=False, write_result=False)
    rec = res.record
    values = decode_per_task(rec)
    assert rec["schema_version"] == "1.1" and values is not None and values.size == 20
    m = rec["metrics"][0]
    assert rec["per_task"]["adaptation_step"] == m["adaptation_step"] and rec["per_task"]["metric"] == "mse"
    np.testing.assert_allclose(values.mean(), m["mean"], rtol=1e-6)
    np.testing.assert_allclose(values.std(), m["std"], rtol=1e-5)
