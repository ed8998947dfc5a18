"""Canonical runs: the config hash of a run with no options, the learner table, the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import metabench
from metabench.cli import main
from metabench.leaderboard.canonical import (
    Canonical,
    aliases,
    canonical_run,
    read_canonical,
    resolve_canonical,
    table_learners,
    write_canonical,
)
from metabench.leaderboard.plan import plan_runs


@pytest.fixture()
def quick(records: Any) -> Any:
    """``quick-ridge``: tiny-ridge with a published budget of 3 steps, validating every step."""
    from metabench.learner import learner_class, learner_registry, register_learner

    class QuickRidge(learner_class("tiny-ridge")):  # type: ignore[misc, valid-type]
        default_steps = 3
        default_val_every = 1

    register_learner("quick-ridge", QuickRidge, "test", override=True)  # type: ignore[arg-type]
    yield
    learner_registry.remove("quick-ridge")


def test_hash_is_the_one_a_run_without_options_writes(quick: Any, tmp_path: Path) -> None:
    from metabench.harness import run

    env = metabench.make(metabench.spec("sinusoid-5s").replace(eval_tasks=20))
    canon = canonical_run(env, "quick-ridge")
    res = run(env, "quick-ridge", out_dir=tmp_path, progress=False, write_result=False)
    assert canon.config_hash == res.record["config_hash"]
    assert (canon.steps, canon.val_every, canon.val_tasks, canon.budget) == (3, 1, 20, "published")
    other = run(env, "quick-ridge", steps=4, out_dir=tmp_path, progress=False, write_result=False)
    assert other.record["config_hash"] != canon.config_hash  # another budget is an experiment
    assert canonical_run(env, "tiny-ridge").budget == "harness default (1000)"


def test_table_order_kinds_and_aliases() -> None:
    from metabench.learner import learner_registry

    cls = table_learners("classification")
    assert cls == [lid for lid in learner_registry if lid in cls]  # registration order
    assert "baseline" in cls and "finetune" not in cls and aliases()["finetune"] == "baseline"
    assert "protonet" not in table_learners("regression") and "maml-rl" in table_learners("rl")
    assert "maml-rl" not in cls


def test_cache_stands_in_for_envs_that_cannot_be_built(tmp_path: Path) -> None:
    cache = tmp_path / "canonical.json"
    fake = Canonical("no-such-env-v0", "maml", "ab" * 32, 10, 0, 0, {}, {"meta_batch": 4}, "published")
    write_canonical(cache, {("no-such-env-v0", "maml"): fake})
    assert read_canonical(cache) == {("no-such-env-v0", "maml"): fake}
    table, problems = resolve_canonical(["no-such-env-v0", "point-nav-v0"], cache)
    assert table[("no-such-env-v0", "maml")] == fake and "from canonical.json" in problems["no-such-env-v0"]
    assert ("point-nav-v0", "maml") in table
    assert ("point-nav-v0", "maml") in read_canonical(cache)  # rewritten with what was computed
    (tmp_path / "bad.json").write_text("{")
    assert read_canonical(tmp_path / "bad.json") == {}


def test_plan_marks_present_runs_and_commands_carry_no_budget(tmp_path: Path) -> None:
    table, _ = resolve_canonical(["point-nav-v0"], None)
    c = table[("point-nav-v0", "maml")]
    (tmp_path / f"point-nav-v0__maml__{c.config_hash[:8]}__s1.json").write_text("{}")
    runs = [r for r in plan_runs(table, tmp_path) if r.canonical.learner == "maml"]
    assert [(r.seed, r.present) for r in runs] == [(0, False), (1, True), (2, False)]
    cmd = runs[0].command("lb", 10)
    assert cmd[:6] == ["metabench", "run", "--env", "point-nav-v0", "--learner", "maml"]
    assert "--steps" not in cmd and "--resume" in cmd and "--set" not in cmd
    reduced = Canonical("ant-dir-v0", "maml-rl", "cd" * 32, 100, 0, 0, {"episodes": "10"}, {}, "reduced budget: x")
    rcmd = plan_runs({("ant-dir-v0", "maml-rl"): reduced}, tmp_path, [0])[0].command("lb", 10)
    assert rcmd[rcmd.index("--steps") + 1] == "100" and "episodes=10" in rcmd


def test_canonical_command_lists_without_running(tmp_path: Path, capsys: Any) -> None:
    assert main(["canonical", "--out", str(tmp_path), "--env", "point-nav", "--learner", "maml", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "missing  point-nav-v0" in out and "metabench run --env point-nav-v0 --learner maml --seed 0" in out
    assert "1 planned runs: 0 present, 1 missing" in out
    assert not (tmp_path / "results").exists()


def test_cache_is_reused_while_the_code_fingerprint_matches(tmp_path: Path) -> None:
    from metabench.leaderboard.canonical import code_fingerprint

    cache = tmp_path / "canonical.json"
    fake = Canonical("no-such-env-v0", "maml", "ef" * 32, 10, 0, 0, {}, {}, "published")
    write_canonical(cache, {("no-such-env-v0", "maml"): fake}, code_fingerprint())
    table, problems = resolve_canonical(["no-such-env-v0"], cache)
    assert table == {("no-such-env-v0", "maml"): fake} and problems == {}  # nothing was built
    write_canonical(cache, {("no-such-env-v0", "maml"): fake}, "0" * 64)  # computed by other code
    table, problems = resolve_canonical(["no-such-env-v0"], cache)
    assert "no-such-env-v0" in problems and table[("no-such-env-v0", "maml")] == fake
    assert code_fingerprint() == code_fingerprint() and len(code_fingerprint()) == 64
