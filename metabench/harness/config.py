"""``RunConfig``: everything that defines one harness run, and the config hash.

The config hash covers what changes a result except the seed: the env spec (with its
overrides, minus machine-local paths), the learner id and its full config, the number
of steps and the validation protocol. Checkpoints carry it, so a resume with different
settings is refused; result files are named after its first 8 hex digits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from metabench.errors import ConfigError

#: meta-training steps of a run that sets none and whose learner has no budget for the env
DEFAULT_STEPS = 1000
#: validation interval of a run that sets none and whose learner has no choice for the env
DEFAULT_VAL_EVERY = 100

#: Env kwargs that locate data on one machine and do not change the task distribution
#: (the data itself is pinned by ``spec.data_hash``).
LOCAL_KWARGS = frozenset({"root", "cache_dir"})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of one run.

    Attributes:
        env: env id (``"sinusoid-5s"``), resolved to its newest version.
        learner: learner id (``"protonet"``).
        steps: meta-training steps (each on ``learner.config.meta_batch`` tasks); ``None``:
            the learner's published budget for the env (``Learner.default_steps``, e.g. MAML
            for RL: 100 on point-nav as Finn et al.), else ``DEFAULT_STEPS``.
        seed: seeds initialisation and the training task stream.
        out_dir: results go to ``out_dir/results/``, checkpoints to ``out_dir/runs/<name>/``.
        val_every: validate every this many steps (and at the end); 0 disables validation
            (the final state is then evaluated); ``None``: the learner's choice for the env
            (``Learner.default_val_every``), else ``DEFAULT_VAL_EVERY``.
        val_tasks: how many of the val split's frozen eval tasks to validate on.
        checkpoint_every: checkpoint every this many steps; 0 checkpoints only at the end
            and on Ctrl-C.
        eval_batch: tasks per vmapped evaluation batch (memory knob; does not change results).
        log_every: how often (steps) losses are pulled to the host, checked for NaN/inf and
            shown; does not change results.
        resume: continue from the run's checkpoint when there is one.
        overrides: learner config overrides (``--set key=value``).
        env_overrides: env kwargs overrides (``--env-set key=value``).
        train_env_overrides: further env kwargs for the *training* tasks only
            (``--train-env-set ways=20``: train 20-way, validate and test at the env's ways,
            as Snell et al. 2017 and seed 000 do); only learners with ``any_ways`` accept
            a different ``ways``.
        progress: show a progress bar on stderr.
        write_result: write the result JSON under ``out_dir/results/``.
        log_dir: write metrics as JSON lines to ``log_dir/<run name>/metrics.jsonl``
            (``metabench.harness.log``); does not change results.
        tensorboard: also write TensorBoard event files there (needs tensorboardX).
    """

    env: str
    learner: str
    steps: int | None = None
    seed: int = 0
    out_dir: str = "leaderboard"
    val_every: int | None = None
    val_tasks: int = 100
    checkpoint_every: int = 0
    eval_batch: int = 50
    log_every: int = 10
    resume: bool = False
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_env_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    progress: bool = True
    write_result: bool = True
    log_dir: str | None = None
    tensorboard: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides))
        object.__setattr__(self, "env_overrides", dict(self.env_overrides))
        object.__setattr__(self, "train_env_overrides", dict(self.train_env_overrides))
        for name, low in (("steps", 1), ("seed", 0), ("val_every", 0), ("val_tasks", 1),
                          ("checkpoint_every", 0), ("eval_batch", 1), ("log_every", 1)):
            value = getattr(self, name)
            if name in ("steps", "val_every") and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"run config: {name} must be an integer >= {low}, got {value!r}")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hashable_spec(spec_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The env spec without machine-local kwargs (data paths)."""
    out = dict(spec_dict)
    out["kwargs"] = {k: v for k, v in dict(spec_dict.get("kwargs", {})).items() if k not in LOCAL_KWARGS}
    out["overrides"] = [k for k in spec_dict.get("overrides", []) if k not in LOCAL_KWARGS]
    return out


def config_hash(
    env_spec: Mapping[str, Any],
    learner_id: str,
    learner_config: Mapping[str, Any],
    *,
    steps: int,
    val_every: int,
    val_tasks: int,
    train_env: Mapping[str, Any] | None = None,
) -> str:
    """sha256 (hex) of everything that determines a result except the seed.

    ``train_env``: the spec of a separate training env (train-only overrides), if any.
    """
    payload: dict[str, Any] = {
        "env": hashable_spec(env_spec),
        "learner": learner_id,
        "learner_config": dict(learner_config),
        "steps": steps,
        "val_every": val_every,
        "val_tasks": val_tasks if val_every else 0,
    }
    if train_env is not None:
        payload["train_env"] = hashable_spec(train_env)
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def run_name(env_id: str, learner_id: str, chash: str, seed: int) -> str:
    """``<env>__<learner>__<confighash8>__s<seed>``: the stem of result and run-dir names."""
    return f"{env_id}__{learner_id}__{chash[:8]}__s{seed}"
