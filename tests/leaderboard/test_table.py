"""README table (best first, per env) and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metabench.leaderboard import regenerate, write_result


def test_pages_link_every_result_and_the_plots(records: Any, variant: Any, tmp_path: Path) -> None:
    """README: a section per env linking its experiments page; there every result (best first
    within a learner) links its file, and the env's plots are shown."""
    reg, cls = records["regression"], records["classification"]
    results = tmp_path / "results"
    write_result(variant(reg, learner="ridge-a", mean=0.9), results)
    write_result(variant(reg, learner="ridge-b", mean=0.1), results)
    write_result(variant(cls, learner="cent-a", mean=0.55), results)
    write_result(variant(cls, learner="cent-b", mean=0.95), results)
    readme = regenerate(tmp_path, canonical={}, plan_envs=())
    text = readme.read_text()
    sine, synth = text.index("## sinusoid-5s-v0"), text.index("## synthetic-5w1s-v0")
    assert "lower is better" in text[sine:] and "higher is better" in text[synth:]
    assert "(experiments/sinusoid-5s-v0.md)" in text and "(experiments/synthetic-5w1s-v0.md)" in text
    assert "| ridge-b |  | 0 | not run (no canonical settings here) ([1 other result]" in text
    sine_page = (tmp_path / "experiments" / "sinusoid-5s-v0.md").read_text()
    link = f"(../results/{variant(reg, learner='ridge-b')['name']}.json)"
    assert link in sine_page and "meta_batch=4" in sine_page
    code = variant(reg, learner="ridge-b")["code"]  # the run's code version is on its row
    rev = (code.get("git_revision") or "")[:7] or code["package_version"]
    assert f"`{rev}`" in sine_page
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == [
        "sinusoid-5s-v0__adaptation.png", "sinusoid-5s-v0__mse.png", "sinusoid-5s-v0__validation.png",
        "synthetic-5w1s-v0__accuracy.png", "synthetic-5w1s-v0__validation.png",
    ]
    pages = sine_page + (tmp_path / "experiments" / "synthetic-5w1s-v0.md").read_text()
    for name in pngs:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(../plots/{name})" in pages


def test_empty_leaderboard(tmp_path: Path) -> None:
    text = regenerate(tmp_path, canonical={}, plan_envs=()).read_text()
    assert "No results yet" in text and not (tmp_path / "plots").exists()


def test_rows_name_the_training_env_options_and_the_accelerator(records: Any, variant: Any) -> None:
    from metabench.leaderboard.table import device_name, key_config

    r = variant(records["classification"], learner="cent-a")
    assert "train:" not in key_config(r) and device_name(r) == r["device"]["backend"]
    r["run"]["train_env"] = {"kwargs": {"ways": 20, "shots": 1}, "overrides": ["ways"]}
    assert key_config(r).endswith("; train: ways=20")
    r["device"] = {**r["device"], "backend": "gpu", "device_kind": "NVIDIA H200"}
    assert device_name(r) == "gpu (NVIDIA H200)"


def test_rows_name_the_outer_step_of_rl_learners(records: Any, variant: Any) -> None:
    """TRPO and PPO rows of MAML-RL differ in the table even when neither was overridden."""
    from metabench.leaderboard.table import key_config

    r = variant(records["classification"], learner="cent-a")
    assert "outer=" not in key_config(r)
    r["learner"] = {**r["learner"], "config": {"outer": "trpo", "outer_epochs": 5}, "overrides": {}}
    assert key_config(r) == f"meta_batch={r['run']['meta_batch']}, outer=trpo"
    r["learner"]["overrides"] = {"outer": "ppo"}  # an override wins, shown once
    assert key_config(r).count("outer=") == 1 and "outer=ppo" in key_config(r)
    r["learner"] = {**r["learner"], "config": {"outer_epochs": 5}, "overrides": {}}  # before the option existed
    assert "outer=ppo" in key_config(r)
    r["learner"]["config"] = {"outer": "trpo", "meta_train": False}  # random-policy: nothing meta-trained
    assert "outer=" not in key_config(r)


def test_rows_name_a_squashed_rl_policy(records: Any, variant: Any) -> None:
    """A tanh-squashed MAML-RL policy (Nav2d's default, not an override) shows in the row; clipping does not."""
    from metabench.leaderboard.table import key_config

    r = variant(records["classification"], learner="cent-a")
    r["learner"] = {**r["learner"], "config": {"outer": "ppo", "outer_epochs": 5, "squash": "tanh"}, "overrides": {}}
    assert key_config(r) == f"meta_batch={r['run']['meta_batch']}, squash=tanh, outer=ppo"
    r["learner"]["overrides"] = {"squash": "tanh"}
    assert key_config(r).count("squash=") == 1
    r["learner"] = {**r["learner"], "config": {"outer": "ppo", "outer_epochs": 5, "squash": "clip"}, "overrides": {}}
    assert "squash" not in key_config(r)
    r["learner"]["config"] = {"outer_epochs": 5}  # before the option existed: clipped
    assert "squash" not in key_config(r)
    r["learner"]["config"] = {"outer_epochs": 5, "inner_lr": 0.1, "eval_inner_lr": 0.01}  # nav2d-easy's default
    assert key_config(r).endswith("eval_inner_lr=0.01, outer=ppo")  # clipped: no squash
    r["learner"]["config"]["eval_inner_lr"] = 0.1
    assert "eval_inner_lr" not in key_config(r)


def test_rows_name_the_rl_policy_and_step_sizes_that_env_defaults_chose(records: Any, variant: Any) -> None:
    """Nav2d's defaults (a linear policy, inner step 0.01, PPO at 0.03) are not overrides but show in the row;
    random-policy rows show the policy and the adaptation step they share, not the meta-training settings."""
    from metabench.leaderboard.table import key_config

    r = variant(records["classification"], learner="cent-a")
    config = {"outer": "ppo", "outer_epochs": 5, "hidden": [], "inner_lr": 0.01, "eval_inner_lr": 0.01,
              "meta_lr": 0.03, "squash": "displacement"}
    r["learner"] = {**r["learner"], "config": config, "overrides": {}}
    assert key_config(r) == (f"meta_batch={r['run']['meta_batch']}, hidden=(), inner_lr=0.01, squash=displacement, "
                             "outer=ppo, meta_lr=0.03")
    r["learner"]["overrides"] = {"hidden": "()"}  # the user's own spelling wins, shown once
    assert key_config(r).count("hidden=") == 1
    r["learner"] = {**r["learner"], "config": {**config, "meta_train": False}, "overrides": {}}
    assert key_config(r) == f"meta_batch={r['run']['meta_batch']}, hidden=(), inner_lr=0.01, squash=displacement"
    r["learner"]["config"]["eval_inner_lr"] = 0.003  # Nav2d's evaluation step: random-policy adapts with it too
    assert key_config(r).endswith("inner_lr=0.01, eval_inner_lr=0.003, squash=displacement")
    finn = {"outer": "trpo", "outer_epochs": 5, "hidden": [100, 100], "inner_lr": 0.1, "meta_lr": 0.03}
    r["learner"] = {**r["learner"], "config": finn, "overrides": {}}  # TRPO ignores meta_lr; Finn's MLP
    assert key_config(r) == f"meta_batch={r['run']['meta_batch']}, outer=trpo"
    r["learner"]["config"] = {**finn, "hidden": [64]}
    assert "hidden=(64,)" in key_config(r)


def test_line_plots_draw_the_best_runs_and_every_learners_best() -> None:
    """With many runs the line plots keep the first MAX_LINES (table order) and each other learner's first."""
    from metabench.leaderboard.plots import MAX_LINES, shown_runs

    ids = ["maml"] * (MAX_LINES + 3) + ["random-policy", "maml", "random-policy", "protonet"]
    records = [{"learner": {"id": i}} for i in ids]
    assert shown_runs(records) == [*range(MAX_LINES), MAX_LINES + 3, len(ids) - 1]
    assert shown_runs(records[:2]) == [0, 1]
    assert shown_runs([]) == []


def test_seed_table_summarises_configurations_with_two_or_more_seeds(records: Any, variant: Any, tmp_path: Path) -> None:
    """Mean, sample sd, range and mean curve over the seeds of one configuration; single-seed ones get no row."""
    import numpy as np

    from metabench.leaderboard.seeds import seed_summaries

    reg = records["regression"]
    results = tmp_path / "results"
    means = {0: 0.30, 1: 0.50, 2: 0.10}
    for seed, mean in means.items():
        write_result(variant(reg, learner="ridge-a", seed=seed, mean=mean), results)
    write_result(variant(reg, learner="ridge-b", seed=0, mean=0.05), results)  # one seed: no summary
    from metabench.leaderboard import read_results
    from metabench.leaderboard.seeds import render_seed_table

    text = "\n".join(render_seed_table(read_results(results)))
    assert "Over training seeds" in text
    row = next(line for line in text.splitlines() if line.startswith("| ridge-a | `"))
    sd = float(np.std(list(means.values()), ddof=1))
    assert f"| 3 (0, 1, 2) | 0.3 ± {sd:.2g} | 0.1 .. 0.5 |" in row
    assert not any(line.startswith("| ridge-b | `") for line in text.splitlines())

    (summary,) = seed_summaries(read_results(results))
    assert summary.seeds == [0, 1, 2] and summary.learner == "ridge-a"
    x, curve = summary.curve()  # every record has the same curve here: its mean is that curve
    assert x == reg["curves"][0]["x"]
    np.testing.assert_allclose(curve, reg["curves"][0]["mean"])


def test_no_seed_table_without_repeated_configurations(records: Any, variant: Any, tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_result(variant(records["regression"], learner="ridge-a", seed=0), results)
    write_result(variant(records["regression"], learner="ridge-b", seed=1), results)
    from metabench.leaderboard import read_results
    from metabench.leaderboard.seeds import render_seed_table

    assert render_seed_table(read_results(results)) == []
