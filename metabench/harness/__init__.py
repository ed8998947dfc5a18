"""The shared harness: meta-train, validate, checkpoint, evaluate on frozen tasks, record.

>>> from metabench.harness import run
>>> result = run("sinusoid-5s", "maml", steps=1000, seed=0, out_dir="leaderboard")
>>> result.metric  # {"name": "mse", "mean": ..., "ci95": ..., "n_tasks": 600, ...}
"""

from __future__ import annotations

from metabench.harness.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from metabench.harness.config import RunConfig, config_hash, run_name
from metabench.harness.evaluate import Evaluator, eval_key
from metabench.harness.metrics import metric_for, summarize, summarize_curve
from metabench.harness.train import (
    NonFiniteLossError,
    Result,
    RunInterrupted,
    prepare,
    resume_command,
    run,
    run_config,
)

__all__ = [
    "CheckpointError",
    "Evaluator",
    "NonFiniteLossError",
    "Result",
    "RunConfig",
    "RunInterrupted",
    "config_hash",
    "eval_key",
    "load_checkpoint",
    "metric_for",
    "prepare",
    "read_meta",
    "resume_command",
    "run",
    "run_config",
    "run_name",
    "save_checkpoint",
    "summarize",
    "summarize_curve",
]
