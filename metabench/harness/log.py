"""Metrics logs of a run: JSON lines (always) and TensorBoard event files (extra ``tensorboard``).

``metabench run --log-dir DIR`` (``RunConfig.log_dir``) writes ``DIR/<run name>/metrics.jsonl``,
one JSON object per line, each with an ``event`` and the ``time`` (seconds since the log
was opened):

* ``{"event": "start", "run": name, "env": id, "learner": id, "seed": s, "config_hash": h, "step": s0}``
* ``{"event": "train", "step": t, "loss": ..., <the learner's other scalar metrics>}`` per step
* ``{"event": "validation", "step": t, "metric": "accuracy", "value": v, "ci95": c, "train_loss": l}``
* ``{"event": "test", "metric": ..., "mean": ..., "ci95": ..., "n_tasks": n}`` at the end

Non-finite values are written as ``null``. A resumed run appends to the same file (its
``start`` line says from which step). ``pandas.read_json(path, lines=True)`` reads it.
With ``tensorboard=True`` (needs ``tensorboardX``: ``pip install 'metabench[tensorboard]'``)
the same scalars also go to TensorBoard event files in ``DIR/<run name>/``
(``train/<name>``, ``val/<metric>``, ``test/<metric>``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metabench.errors import ConfigError


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends JSON lines to ``log_dir/<name>/metrics.jsonl`` (module docstring)."""

    def __init__(self, log_dir: str | os.PathLike[str], name: str, *, tensorboard: bool = False):
        self.dir = Path(log_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.jsonl"
        self._t0 = time.perf_counter()
        self._tb: Any = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ModuleNotFoundError:
                raise ConfigError(
                    "TensorBoard logging needs tensorboardX: pip install 'metabench[tensorboard]' "
                    "(the JSON lines log needs nothing)"
                ) from None
            self._tb = SummaryWriter(str(self.dir))

    def write(self, event: str, **fields: Any) -> None:
        """One line ``{"event": event, "time": ..., **fields}``, flushed."""
        row = {"event": event, "time": round(time.perf_counter() - self._t0, 6),
               **{k: _clean(v) for k, v in fields.items()}}
        with open(self.path, "a", encoding="utf-8") as f:  # no handle left open when a run fails
            f.write(json.dumps(row, default=str) + "\n")

    def train(self, step: int, metrics: Mapping[str, float | None]) -> None:
        self.write("train", step=step, **metrics)
        if self._tb is not None:
            for k, v in metrics.items():
                if v is not None:
                    self._tb.add_scalar(f"train/{k}", v, step)

    def validation(self, step: int, metric: str, value: float, ci95: float, train_loss: float | None) -> None:
        self.write("validation", step=step, metric=metric, value=value, ci95=ci95, train_loss=train_loss)
        if self._tb is not None:
            self._tb.add_scalar(f"val/{metric}", value, step)

    def test(self, step: int, metric: Mapping[str, Any]) -> None:
        self.write("test", step=step, **{k: metric[k] for k in ("name", "mean", "ci95", "n_tasks") if k in metric})
        if self._tb is not None:
            self._tb.add_scalar(f"test/{metric['name']}", metric["mean"], step)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def open_log(cfg: Any, name: str, env: Any, learner_id: str, chash: str, step: int) -> MetricsLog | None:
    """The run's log when ``cfg.log_dir`` is set (its ``start`` line written), else None."""
    if cfg.log_dir is None:
        if cfg.tensorboard:
            raise ConfigError("tensorboard logging needs a log directory: --log-dir DIR")
        return None
    log = MetricsLog(cfg.log_dir, name, tensorboard=cfg.tensorboard)
    log.write("start", run=name, env=env.spec.id, learner=learner_id, seed=cfg.seed, config_hash=chash, step=step)
    return log


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
