"""``metabench.load``: a trained learner back from a harness run, ready to adapt and predict.

>>> run = metabench.load("leaderboard/results/sinusoid-5s-v0__maml__1a2b3c4d__s0.json")
>>> adapted = run.learner.adapt(run.state, (x_support, y_support), jax.random.key(0))
>>> y_query = run.learner.predict(run.state, adapted, x_query)

A run is found from its result JSON (``OUT/results/<name>.json``) or its run directory
(``OUT/runs/<name>/``, which holds ``checkpoint.npz``); the env is rebuilt from the
recorded spec, the learner from the recorded id and overrides, and the best-validation
state (the one the harness evaluated) is read from the checkpoint. Everything that could
make the loaded learner differ from the one that was trained is checked and named when it
does: the metabench version, the learner's resolved config, the config hash, the data
hash and the checkpoint's structure (``strict=False`` turns the first four into warnings).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import jax

from metabench.errors import ConfigError, MetabenchError
from metabench.spec import EnvSpec


class LoadError(MetabenchError):
    """A run that cannot be loaded, or whose rebuilt learner would differ from the trained one."""


@dataclasses.dataclass
class LoadedRun:
    """What ``load`` returns.

    spec: the env spec the run was trained and tested on; env: that env, rebuilt.
    learner: the learner, rebuilt with the run's config; state: its best-validation state.
    record: the result record (None for a run without one); checkpoint: the file read.
    """

    spec: EnvSpec
    env: Any
    learner: Any
    state: Any
    record: dict[str, Any] | None
    checkpoint: Path

    def adapt(self, support: Any, key: jax.Array) -> Any:
        """``learner.adapt(state, support, key)``: adapt to one support set ``(x, y)``."""
        return self.learner.adapt(self.state, support, key)

    def predict(self, adapted: Any, x: Any) -> jax.Array:
        """``learner.predict(state, adapted, x)``: logits or regression outputs on ``x``."""
        return self.learner.predict(self.state, adapted, x)


def _locate(path: Path) -> tuple[dict[str, Any] | None, Path]:
    """``(record or None, checkpoint path)`` of a result JSON or a run directory."""
    if path.is_dir():
        ckpt = path / "checkpoint.npz"
        result = path.parent.parent / "results" / f"{path.name}.json"
        return (_read_record(result) if result.exists() else None), ckpt
    if path.suffix == ".json":
        record = _read_record(path)
        name = record.get("name")
        if not isinstance(name, str):
            raise LoadError(f"{path} has no run name: not a metabench result record")
        return record, path.parent.parent / "runs" / name / "checkpoint.npz"
    if path.name == "checkpoint.npz":
        return _locate(path.parent)[0], path
    if not path.exists():
        raise LoadError(f"{path} does not exist: pass a result JSON (OUT/results/<name>.json) or a run "
                        "directory (OUT/runs/<name>/)")
    raise LoadError(f"{path}: expected a result JSON, a run directory or its checkpoint.npz")


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoadError(f"result {path} cannot be read as JSON ({type(e).__name__}: {e})") from None
    for key in ("env", "learner", "config_hash"):
        if key not in record:
            raise LoadError(f"result {path} has no {key!r}: not a metabench result record")
    return record


def _mismatch(strict: bool, message: str) -> None:
    if strict:
        raise LoadError(message + " (pass strict=False to load it anyway)")
    warnings.warn(message, stacklevel=3)


def checkpoint_load_meta(env: Any, learner: Any, overrides: Any) -> dict[str, Any]:
    """The checkpoint metadata ``load`` reads when a run has no result record (yet)."""
    import metabench
    from metabench.harness.record import jsonable

    return {"env_spec": jsonable(env.spec.to_dict()), "overrides": jsonable(dict(overrides)),
            "learner_config": jsonable(learner.config.to_dict()), "metabench_version": metabench.__version__}


def _run_info(record: dict[str, Any] | None, meta: dict[str, Any], ckpt: Path) -> dict[str, Any]:
    """Env spec, learner id, overrides and version: from the record, else from the checkpoint."""
    if record is not None:
        return {"spec": record["env"]["spec"], "learner": record["learner"]["id"],
                "overrides": record["learner"].get("overrides", {}),
                "version": (record.get("versions") or {}).get("metabench"),
                "config": record["learner"].get("config")}
    if "env_spec" not in meta:
        raise LoadError(f"{ckpt}: no result record beside it (OUT/results/<name>.json) and the checkpoint does not "
                        "record its env spec (written before metabench.load existed); pass the result JSON")
    return {"spec": meta["env_spec"], "learner": meta["learner"], "overrides": meta.get("overrides", {}),
            "version": meta.get("metabench_version"), "config": meta.get("learner_config")}


def load(path: str | os.PathLike[str], *, strict: bool = True, key: jax.Array | None = None,
         **env_overrides: Any) -> LoadedRun:
    """Load a harness run (result JSON, run directory or checkpoint); module docstring.

    ``env_overrides`` go to ``metabench.make`` (e.g. ``root=`` where the data lives on this
    machine; machine-local keys do not change the config hash). ``key`` only builds the
    state template the checkpoint is read into (its values are replaced).
    """
    import metabench
    from metabench.harness.checkpoint import load_checkpoint, read_meta
    from metabench.harness.config import LOCAL_KWARGS, config_hash
    from metabench.learner import make_learner

    record, ckpt = _locate(Path(path))
    meta = read_meta(ckpt)  # CheckpointError naming the file when missing or corrupt
    info = _run_info(record, meta, ckpt)
    if info["version"] is not None and info["version"] != metabench.__version__:
        _mismatch(strict, f"{ckpt} was written by metabench {info['version']}; this is metabench "
                          f"{metabench.__version__}")
    unknown = sorted(set(env_overrides) - LOCAL_KWARGS)
    if unknown:
        raise ConfigError(f"load: env overrides may only locate data ({', '.join(sorted(LOCAL_KWARGS))}); got "
                          f"{', '.join(unknown)} (they would change the tasks the learner was trained on)")
    recorded = EnvSpec.from_dict(info["spec"])
    base = recorded.replace(data_hash=None)
    if env_overrides:
        base = base.replace(kwargs={**base.kwargs, **env_overrides})
    env = metabench.make(base)
    if recorded.data_hash is not None and env.spec.data_hash != recorded.data_hash:
        _mismatch(strict, f"{env.spec.id}: the data here has hash {env.spec.data_hash}, the run was trained on "
                          f"{recorded.data_hash}")
    backbone = dict(info["overrides"]).get("backbone")
    if isinstance(backbone, dict) and "module" in backbone:
        raise LoadError(
            f"{info['learner']}: the run's backbone was a flax module instance ({backbone['module']} with fields "
            f"{backbone.get('fields')}), which a record cannot rebuild. Build the learner with "
            "make_learner(id, env, backbone=<that module>) and read the checkpoint with "
            "metabench.harness.load_checkpoint, or run with an entry point backbone='pkg.mod:attr' (loadable)"
        )
    learner = make_learner(info["learner"], env, **dict(info["overrides"]))
    config = json.loads(json.dumps(learner.config.to_dict(), default=str))
    if info["config"] is not None and not learner.config.matches(info["config"]):
        diff = sorted(k for k in set(config) | set(info["config"]) if config.get(k) != info["config"].get(k))
        _mismatch(strict, f"{info['learner']}: this metabench builds another config than the run's; differs in "
                          + ", ".join(f"{k} ({info['config'].get(k)!r} recorded, {config.get(k)!r} now)" for k in diff))
    if record is not None and meta.get("config_hash") not in (None, record["config_hash"]):
        raise LoadError(f"{ckpt} belongs to config {str(meta['config_hash'])[:8]}, the result {record['name']} "
                        f"to {record['config_hash'][:8]}: checkpoint and result are of different runs")
    if record is not None:
        run = record.get("run") or {}
        chash = config_hash(env.spec.to_dict(), info["learner"], learner.config.hash_dict(), steps=run.get("steps", 0),
                            val_every=run.get("val_every", 0), val_tasks=run.get("val_tasks", 0),
                            train_env=run.get("train_env"))
        if chash != record["config_hash"]:
            _mismatch(strict, f"{record['name']}: the config hash recomputes to {chash[:8]}, the run recorded "
                              f"{record['config_hash'][:8]} (the env spec or the learner config changed)")
    template = learner.init(key if key is not None else jax.random.key(0))
    trees, _ = load_checkpoint(ckpt, {"best": template})
    return LoadedRun(spec=env.spec, env=env, learner=learner, state=trees["best"], record=record, checkpoint=ckpt)
