"""Row helpers of the leaderboard pages (headline, key config, code version, device); ``render``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = tuple[Path, dict[str, Any]]


def headline(record: dict[str, Any]) -> dict[str, Any]:
    return record["metrics"][0]


def group_by_env(results: Sequence[Row]) -> dict[str, list[Row]]:
    """``env id -> rows``, each list sorted best first (ties: fewer steps, then seed)."""
    groups: dict[str, list[Row]] = {}
    for row in results:
        groups.setdefault(row[1]["env"]["id"], []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: (
            -headline(r[1])["mean"] if headline(r[1])["higher_is_better"] else headline(r[1])["mean"],
            r[1]["run"]["steps"], r[1]["seed"], r[1]["name"],
        ))
    return dict(sorted(groups.items()))


def _fmt(record: dict[str, Any]) -> str:
    m = headline(record)
    if m["name"] == "accuracy":
        text = f"{100 * m['mean']:.2f} ± {100 * m['ci95']:.2f} %"
    else:
        text = f"{m['mean']:.4g} ± {m['ci95']:.2g}"
    collapse = (record.get("train") or {}).get("collapse") or {}
    if collapse.get("detected"):
        at = f" at step {collapse['step']}" if collapse.get("step") is not None else ""
        text += f" **collapse{at}**"
    return text


def _rl_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The MAML-RL settings that per-env defaults decide (so not always overrides) and rows
    must not hide. Every RL record with a policy: ``hidden`` where the policy is not Finn et
    al.'s 2 x 100 MLP (``hidden=()``: linear), ``inner_lr`` where it is not 0.1,
    ``eval_inner_lr`` where it differs from ``inner_lr`` (the adaptation steps) and
    ``squash`` where the policy did not clip its actions (``"tanh"``, ``"displacement"``): all
    of which random-policy rows share. Meta-trained ones also: ``outer`` (TRPO and PPO rows
    must differ even when neither was overridden) and PPO's ``meta_lr`` where it is not 1e-3. Records
    from before the ``outer`` option trained with PPO, their only outer step, and from
    before ``squash`` clipped. Others: ``{}``."""
    if "outer_epochs" not in config:
        return {}
    out: dict[str, Any] = {}
    if "hidden" in config and list(config["hidden"]) != [100, 100]:
        out["hidden"] = str(tuple(config["hidden"]))
    if config.get("inner_lr", 0.1) != 0.1:
        out["inner_lr"] = config["inner_lr"]
    if config.get("eval_inner_lr", config.get("inner_lr")) != config.get("inner_lr"):
        out["eval_inner_lr"] = config["eval_inner_lr"]
    if config.get("squash", "clip") != "clip":
        out["squash"] = config["squash"]
    if config.get("meta_train") is False:
        return out
    out["outer"] = config.get("outer", "ppo")
    if out["outer"] == "ppo" and config.get("meta_lr", 1e-3) != 1e-3:
        out["meta_lr"] = config["meta_lr"]
    return out


def key_config(record: dict[str, Any]) -> str:
    """The learner settings that differ from its defaults, plus meta_batch and an RL
    learner's ``_rl_settings``, plus the training env's options where it differs from the
    test env (``train: ways=20``)."""
    items = {
        "meta_batch": record["run"]["meta_batch"],
        **_rl_settings(record["learner"].get("config") or {}),
        **record["learner"]["overrides"],
    }
    text = ", ".join(f"{k}={v}" for k, v in items.items())
    train_env = record["run"].get("train_env") or {}
    trained = {k: train_env.get("kwargs", {}).get(k) for k in train_env.get("overrides", [])}
    if trained:
        text += "; train: " + ", ".join(f"{k}={v}" for k, v in trained.items())
    return text.replace("|", "\\|")


def device_name(record: dict[str, Any]) -> str:
    """``cpu``, or the backend with the accelerator's kind (``gpu (NVIDIA H200)``)."""
    dev = record["device"]
    kind = dev.get("device_kind")
    return dev["backend"] if dev["backend"] == "cpu" or not kind else f"{dev['backend']} ({kind})"


def code_version(record: dict[str, Any]) -> str:
    """Short git revision of the run (``+dirty`` for uncommitted changes); defaults change between versions."""
    code = record.get("code") or {}
    rev = (code.get("git_revision") or "")[:7] or code.get("package_version", "?")
    return f"`{rev}`" + (" +dirty" if code.get("git_dirty") else "")


def render(results: Sequence[Row], directory: str | os.PathLike[str], plots: dict[str, list[str]] | None = None,
           canonical: Any = None) -> str:
    """The main page's text (``metabench.leaderboard.pages``; ``canonical``: the canonical
    table, default none known); links are relative to ``directory`` (where README.md goes)."""
    from metabench.leaderboard.pages import render_pages

    pages = render_pages(results, directory, canonical or {}, plots=plots)
    return pages[Path(directory) / "README.md"]
