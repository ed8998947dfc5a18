"""Discoverable learner options (metabench/config_fields.py, metabench/cli_help.py): listing, choices, hashes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import pytest

import metabench
from metabench.cli import main
from metabench.config_fields import check_choices, choices_of, field_docs
from metabench.harness.config import config_hash
from metabench.learner import LearnerConfig, learner_class, learner_help, learner_registry, make_config

RESULTS = sorted((Path(__file__).resolve().parent.parent / "leaderboard" / "results").glob("*.json"))


@pytest.mark.parametrize("key", sorted(learner_registry))
def test_every_field_of_every_learner_has_a_type_default_and_doc(key: str) -> None:
    cls = learner_class(key)
    docs = field_docs(cls.Config)
    assert [d.name for d in docs] == [f.name for f in dataclasses.fields(cls.Config)]
    for d in docs:
        assert d.type and d.type != "Any", (key, d.name)
        assert d.default is not dataclasses.MISSING, (key, d.name)
        assert d.doc, f"{key}: field {d.name!r} has no doc line in its Config docstring"
    text = learner_help(key)
    for d in docs:
        assert f"  {d.name}: " in text


def test_maml_listing_reads_types_defaults_docs_and_choices() -> None:
    docs = {d.name: d for d in field_docs(learner_class("maml").Config)}
    assert docs["meta_reduce"].choices == ("mean", "sum") and docs["meta_reduce"].default == "mean"
    assert "eq. 3.8" in docs["meta_reduce"].doc
    assert docs["hidden"].doc == "MLP hidden sizes." and docs["depth"].doc == "Conv-4 width/depth"
    assert docs["inner_lr"].type == "float | None" and docs["inner_lr"].doc.startswith("alpha of eq. 3.1")
    rl = {d.name: d for d in field_docs(learner_class("maml-rl").Config)}
    assert rl["outer"].choices == ("trpo", "ppo", None)
    assert rl["log_std_init"].doc == "initial log standard deviation."  # an entry inside another one


def test_choices_are_checked_when_the_config_is_made_with_did_you_mean() -> None:
    cls = learner_class("maml-rl")
    with pytest.raises(metabench.ConfigError, match=r"outer='ppox' is not a choice\. Did you mean: 'ppo'"):
        make_config(cls, {"outer": "ppox"}, where="learner 'maml-rl'")
    with pytest.raises(metabench.ConfigError, match="squash='tanhh'.*'tanh'"):
        cls.Config(squash="tanhh")
    with pytest.raises(metabench.ConfigError, match="distance"):
        dataclasses.replace(learner_class("protonet").Config(), distance="cosin")
    assert make_config(cls, {"outer": "ppo", "squash": "None"}).squash is None  # --set squash=None
    assert make_config(learner_class("protonet"), {"distance": "cosine"}).distance == "cosine"


def test_choice_helpers() -> None:
    assert choices_of(Literal["a", "b"]) == ("a", "b")
    assert choices_of(Literal["a"] | None) == ("a", None)
    assert choices_of(str) is None and choices_of(int | None) is None

    @dataclasses.dataclass(frozen=True)
    class C(LearnerConfig):
        """mode: a choice of ints."""

        mode: Literal[1, 2] = 1

    assert C(mode=2).mode == 2
    with pytest.raises(metabench.ConfigError, match="mode=True is not a choice"):
        C(mode=True)  # type: ignore[arg-type]  # True == 1, but not a choice
    check_choices(C())


def test_cli_run_learner_help_and_list_learner(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--learner", "maml", "--help"], ["run", "--help", "--learner=maml"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "--val-every" in out  # the run options
        assert "learner maml: second-order MAML" in out
        assert "  meta_reduce: Literal['mean', 'sum'] = 'mean'" in out and "Adam learning rate beta." in out
        assert "metabench list learners maml-rl" in out  # where the RL options are
    assert main(["list", "learners", "maml-fo"]) == 0
    out = capsys.readouterr().out
    assert "registered defaults: first_order=True" in out and "  inner_lr: float | None = None" in out
    assert main(["run", "--learner", "mamll", "--help"]) == 1
    assert "Did you mean: 'maml'" in capsys.readouterr().err
    assert main(["list", "envs", "maml"]) == 1


def test_cli_bad_choice_fails_fast(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--env", "point-nav", "--learner", "maml-rl", "--set", "outer=ppox", "--out", str(tmp_path)]) == 1
    assert "Did you mean: 'ppo'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _recomputed(record: dict) -> str:
    cls = learner_class(record["learner"]["id"])
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    config = cls.Config(**{k: v for k, v in record["learner"]["config"].items() if k in fields})  # choices checked
    run = record["run"]
    return config_hash(record["env"]["spec"], record["learner"]["id"], config.hash_dict(), steps=run["steps"],
                       val_every=run["val_every"], val_tasks=run["val_tasks"], train_env=run.get("train_env"))


@pytest.mark.skipif(not RESULTS, reason="no committed leaderboard results")
def test_committed_leaderboard_config_hashes_recompute_identically() -> None:
    """Typing fields Literal (and the listing) changed no config hash: every committed result whose
    recorded config has the current field set, rebuilt as its learner's Config (choices checked),
    hashes to its recorded config hash. (Results recorded before a field was added hold an older
    field set; the current code cannot rebuild their configs, with or without Literal types.)"""
    checked = 0
    for path in RESULTS:
        record = json.loads(path.read_text())
        cls = learner_class(record["learner"]["id"])
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        recorded = set(record["learner"]["config"])
        # fields added later and hashed only off their default (``backbone``) may be missing from the record
        if recorded - fields or not (fields - recorded) <= {"backbone"}:
            continue
        assert _recomputed(record) == record["config_hash"], path.name
        assert path.name.split("__")[2] == record["config_hash"][:8]
        checked += 1
    assert checked >= 100, checked  # 113 of the 230 committed results when this test was written


def test_a_record_written_before_a_hash_omitted_field_matches_the_default_config() -> None:
    """``LearnerConfig.matches``: records without ``backbone`` (added later, hash-omitted at its
    default) are the default config; a different value of any field is not."""
    import dataclasses

    from metabench.baselines.maml import MAML

    c = MAML.Config()
    old = {k: v for k, v in json.loads(json.dumps(c.to_dict())).items() if k != "backbone"}
    assert c.matches(old) and c.matches(json.loads(json.dumps(c.to_dict())))
    assert not c.matches({**old, "inner_lr": 123.0})
    assert not dataclasses.replace(c, backbone="conv4").matches(old)
