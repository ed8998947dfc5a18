"""The main page (canonical rows in table order, ties, not run, references) and the experiments pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metabench.leaderboard import regenerate, write_result
from metabench.leaderboard.canonical import Canonical


@pytest.fixture()
def extra(records: Any) -> Any:
    """``tiny-centroid-b`` / ``-c``: tiny-centroid with other defaults, registered after it."""
    from metabench.learner import learner_registry, learner_spec, register_learner

    cls = learner_spec("tiny-centroid").entry_point
    register_learner("tiny-centroid-b", cls, "test", defaults={"lr": 0.4}, override=True)
    register_learner("tiny-centroid-c", cls, "test", defaults={"lr": 0.3}, override=True)
    yield
    learner_registry.remove("tiny-centroid-b")
    learner_registry.remove("tiny-centroid-c")


def _canon(record: dict[str, Any], learner: str, chash: str | None = None) -> Canonical:
    return Canonical(record["env"]["id"], learner, chash or record["config_hash"], record["run"]["steps"],
                     record["run"]["val_every"], record["run"]["val_tasks"], {}, dict(record["learner"]["config"]),
                     "published")


def _section(text: str, env_id: str) -> str:
    start = text.index(f"## {env_id}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _row(section: str, learner: str) -> str:
    return next(line for line in section.splitlines() if line.startswith(f"| {learner} |"))


@pytest.fixture()
def board(records: Any, pertask: Any, variant: Any, tmp_path: Path, extra: Any) -> tuple[Path, dict[tuple[str, str], Canonical]]:
    """classification env: tiny-centroid best over 3 seeds, tiny-centroid-b tied, tiny-centroid-c worse;
    a non-canonical tiny-centroid result; regression env: tiny-ridge only as an experiment (not run)."""
    cls, reg = records["classification"], records["regression"]
    n = cls["metrics"][0]["n_tasks"]
    rng = np.random.default_rng(0)
    base = rng.integers(10, 26, n) / 25
    results = tmp_path / "results"
    for s in range(3):
        write_result(pertask(cls, np.clip(base + rng.normal(0, 0.01, n), 0, 1), learner="tiny-centroid", seed=s), results)
    for s in range(2):
        write_result(pertask(cls, np.clip(base + rng.normal(0, 0.01, n), 0, 1), learner="tiny-centroid-b", seed=s), results)
    write_result(pertask(cls, base - 0.2, learner="tiny-centroid-c", seed=0), results)
    other = pertask(cls, base * 0.5, learner="tiny-centroid", seed=0, config_hash="ab" * 32)
    other["run"]["steps"] = 999
    write_result(other, results)
    write_result(variant(reg, learner="tiny-ridge", seed=0), results)
    canonical = {(cls["env"]["id"], lid): _canon(cls, lid) for lid in ("tiny-centroid", "tiny-centroid-b", "tiny-centroid-c")}
    canonical[(reg["env"]["id"], "tiny-ridge")] = _canon(reg, "tiny-ridge", chash="cd" * 32)
    return tmp_path, canonical


def test_one_row_per_learner_with_ties_and_not_run(board: Any, records: Any, extra: Any) -> None:
    directory, canonical = board
    text = regenerate(directory, plots=False, canonical=canonical, plan_envs=()).read_text()
    cls_env, reg_env = records["classification"]["env"]["id"], records["regression"]["env"]["id"]
    sec = _section(text, cls_env)
    lines = [ln for ln in sec.splitlines() if ln.startswith("| tiny-")]
    assert [ln.split(" | ")[0] for ln in lines] == ["| tiny-centroid", "| tiny-centroid-b", "| tiny-centroid-c"]
    best, tied, worse = (_row(sec, f"tiny-centroid{x}") for x in ("", "-b", "-c"))
    assert "**best**" in best and "| 3 |" in best and "[1 other result]" in best
    assert "tied, p = " in tied and "| 2 |" in tied and "(seeds)" not in tied
    assert "worse, p < 0.001" in worse and "(1 seed)" in worse
    assert "†" not in best  # per-task values: IQM over seeds x tasks
    reg = _section(text, reg_env)
    assert "| tiny-ridge | " in reg and "not run ([1 other result](experiments/" in _row(reg, "tiny-ridge")
    assert f"[all 7 results, by configuration](experiments/{cls_env}.md)" in sec


def test_a_better_experiment_than_every_canonical_row_is_named(board: Any, records: Any, pertask: Any,
                                                               extra: Any) -> None:
    """The rows are canonical runs; a non-canonical result that beats them all is named under the
    table (a reduced-budget row marked best is not the best anyone got), and only then."""
    directory, canonical = board
    cls = records["classification"]
    env_id = cls["env"]["id"]
    text = regenerate(directory, plots=False, canonical=canonical, plan_envs=()).read_text()
    assert "Best single result in any configuration" not in _section(text, env_id)  # canonical is best
    n = cls["metrics"][0]["n_tasks"]
    better = pertask(cls, np.ones(n), learner="tiny-centroid-c", seed=4, config_hash="ef" * 32)
    write_result(better, directory / "results")
    sec = _section(regenerate(directory, plots=False, canonical=canonical, plan_envs=()).read_text(), env_id)
    assert ("Best single result in any configuration: `tiny-centroid-c` 100.00 % (seed 4, config `efefefef`; "
            f"[experiments](experiments/{env_id}.md#tiny-centroid-c))") in sec
    assert "**best**" in _row(sec, "tiny-centroid")  # the marks stay among canonical rows


def test_learner_table_order_not_score(board: Any, records: Any, extra: Any) -> None:
    """Rows follow the order the learners are registered in even when a later one scores best."""
    directory, canonical = board
    from metabench.leaderboard.canonical import table_learners

    order = table_learners("classification")
    assert order.index("tiny-centroid") < order.index("tiny-centroid-b") < order.index("tiny-centroid-c")
    text = regenerate(directory, plots=False, canonical=canonical, plan_envs=()).read_text()
    sec = _section(text, records["classification"]["env"]["id"])
    assert sec.index("| tiny-centroid |") < sec.index("| tiny-centroid-b |") < sec.index("| tiny-centroid-c |")


def test_experiments_page_holds_every_result(board: Any, records: Any, extra: Any) -> None:
    directory, canonical = board
    regenerate(directory, plots=False, canonical=canonical, plan_envs=())
    env_id = records["classification"]["env"]["id"]
    page = (directory / "experiments" / f"{env_id}.md").read_text()
    for f in (directory / "results").glob(f"{env_id}__*.json"):
        assert f"(../results/{f.name})" in page, f.name
    canon_row = next(ln for ln in page.splitlines() if "**canonical run**" in ln and ln.startswith("| `"))
    assert "| 3 |" in canon_row
    other = next(ln for ln in page.splitlines() if ln.startswith("| `abababab` |"))
    assert "steps=999 (canonical" in other
    assert "(../README.md#" in page


def test_seed_without_per_task_values_falls_back_to_welch(records: Any, variant: Any, tmp_path: Path, extra: Any) -> None:
    cls = records["classification"]
    results = tmp_path / "results"
    for s, m in enumerate((0.80, 0.82, 0.81)):
        r = variant(cls, learner="tiny-centroid", seed=s, mean=m)
        r.pop("per_task"); r["schema_version"] = "1.0"
        write_result(r, results)
    for s, m in enumerate((0.50, 0.52)):
        r = variant(cls, learner="tiny-centroid-b", seed=s, mean=m)
        r.pop("per_task"); r["schema_version"] = "1.0"
        write_result(r, results)
    canonical = {(cls["env"]["id"], lid): _canon(cls, lid) for lid in ("tiny-centroid", "tiny-centroid-b")}
    sec = _section(regenerate(tmp_path, plots=False, canonical=canonical, plan_envs=()).read_text(), cls["env"]["id"])
    assert "(seeds)" in _row(sec, "tiny-centroid-b") and "†" in _row(sec, "tiny-centroid")
    assert "81.00 %" in _row(sec, "tiny-centroid")


def test_corrupt_partial_and_off_schema_files_are_reported_and_skipped(board: Any, records: Any, extra: Any) -> None:
    directory, canonical = board
    results = directory / "results"
    good = next(results.glob("*.json"))
    (results / "corrupt.json").write_bytes(b"\x00\xff garbage")
    (results / "partial.json").write_text(good.read_text()[:200])
    bad = json.loads(good.read_text())
    bad["timestamp"] = "not-a-date"
    (results / good.name.replace("__s", "__x").replace(".json", "") ).with_suffix(".json").write_text(json.dumps(bad))
    reported: list[str] = []
    text = regenerate(directory, plots=False, canonical=canonical, plan_envs=(), report=reported.append).read_text()
    assert "## Skipped result files (3)" in text
    assert "`corrupt.json`: not readable JSON" in text and "`partial.json`: not readable JSON" in text
    assert "timestamp: 'not-a-date' is not a 'date-time'" in text
    assert len(reported) == 3 and all("skipped" in r for r in reported)
    assert "**best**" in text  # the rest rendered


def test_published_references_stand_in_the_row() -> None:
    from metabench.leaderboard.published_cell import published_cell

    assert published_cell("point-nav-v0", "maml", "rl", 3) == \
        "-3.2 after 3 steps (-40.4 → -11.7 → -3.3 → -3.2), Finn et al. 2017, Fig. 5"
    assert published_cell("point-nav-v0", "maml-rl", "rl", 1).startswith("-11.7 after 1 step ")
    assert published_cell("ant-dir-v0", "maml", "rl", 3).startswith("499.2 after 1 step")  # only 0 and 1 published
    lite = published_cell("omniglot-lite-5w5s-v0", "maml", "classification")
    assert lite == "99.9 % (full Omniglot), Finn et al. 2017, Table 1"
    es = published_cell("omniglot-lite-5w5s-v0", "es-protonet", "classification")
    assert es.startswith("98.4–99.1 % (full Omniglot), seed 000")
    cub = published_cell("cub-5w5s-v0", "baseline-pp", "classification")  # alias of Baseline++
    assert "72.0" not in cub and "53.0 ± 1.0 %, Huisman 2024 (seed 003), Table 3.1" in cub and "79.3 %" in cub
    assert published_cell("sinusoid-5s-v0", "maml", "regression") == ""


def test_sparkline() -> None:
    from metabench.leaderboard.sparkline import curve_text, sparkline

    assert sparkline([0.0, 1.0, 2.0, 7.0]) == "▁▂▃█"
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert curve_text([-40.0, -4.5], lambda v: f"{v:g}") == "▁█ -40 → -4.5"
    assert curve_text([0.5], str) == "0.5"


def test_differences_name_changed_missing_and_removed_keys(records: Any, variant: Any) -> None:
    from metabench.leaderboard.experiments import differences

    r = variant(records["regression"], learner="tiny-ridge")
    canon = _canon(r, "tiny-ridge")
    assert differences(r, canon) == "same settings, other code: the config hash differs"
    r["learner"]["config"] = {**r["learner"]["config"], "lr": 0.9, "gone": 1}
    del r["learner"]["config"]["meta_batch"]
    r["run"]["steps"] += 5
    r["env"]["spec"] = {**r["env"]["spec"], "overrides": ["queries", "root"],
                        "kwargs": {**r["env"]["spec"]["kwargs"], "queries": 7}}
    text = differences(r, canon)
    assert "lr=0.9" in text and "meta_batch: not recorded" in text and "gone=1 (option no longer exists)" in text
    assert f"steps={r['run']['steps']} (canonical {canon.steps})" in text and "env: queries=7" in text
    assert "root" not in text  # a data path is not a setting
    assert differences(r, None).endswith("(no canonical settings known)")
