"""``run``: meta-train a learner on an env, validate, checkpoint, evaluate, record.

Reproducibility: the run key is ``jax.random.key(seed)``; initialisation uses
``fold_in(key, 0)`` and training step ``t`` uses ``fold_in(fold_in(key, 1), t)`` (split
into a task-sampling key and a learner key), so the task stream is a function of the
seed and the step index only, and a resumed run draws exactly the tasks an
uninterrupted run draws. Validation and test evaluation use fixed keys (``evaluate``).
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from metabench.errors import ConfigError, MetabenchError
from metabench.harness import provenance
from metabench.harness.checkpoint import load_checkpoint, save_checkpoint
from metabench.harness.collapse import detect_collapse
from metabench.harness.config import DEFAULT_STEPS, DEFAULT_VAL_EVERY, RunConfig, config_hash, run_name
from metabench.harness.evaluate import Evaluator
from metabench.harness.log import open_log
from metabench.harness.metrics import is_better, metric_for
from metabench.harness.record import build_record, jsonable
from metabench.loading import checkpoint_load_meta
from metabench.progress import Progress

Callback = Callable[[int, Any, Mapping[str, Any]], None]


class NonFiniteLossError(MetabenchError):
    """A NaN or infinite training loss; the message names the step and the last good checkpoint."""


class RunInterrupted(MetabenchError):
    """Ctrl-C during a run; a checkpoint was written and the message says how to resume."""

    def __init__(self, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclasses.dataclass
class Result:
    """What ``run`` returns.

    record: the result record (the leaderboard JSON).
    path: where the record was written (None with ``write_result=False``).
    state: the evaluated (best-validation) state; final_state: the state after the last step.
    checkpoint: the run's checkpoint file.
    """

    record: dict[str, Any]
    path: Path | None
    state: Any
    final_state: Any
    checkpoint: Path

    @property
    def metric(self) -> dict[str, Any]:
        return self.record["metrics"][0]


def run(
    env: str | Any,
    learner: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    out_dir: str | Path = "leaderboard",
    val_every: int | None = None,
    val_tasks: int = 100,
    checkpoint_every: int = 0,
    resume: bool = False,
    overrides: Mapping[str, Any] | None = None,
    env_overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    eval_batch: int = 50,
    log_every: int = 10,
    write_result: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    callback: Callback | None = None,
    log_dir: str | Path | None = None,
) -> Result:
    """Meta-train ``learner`` on ``env`` (an id or a built env), then evaluate on the frozen test set.

    See ``RunConfig`` for the arguments. ``callback(step, state, metrics)`` runs after every
    training step (``step`` counts completed steps); raising ``KeyboardInterrupt`` from it
    behaves like Ctrl-C. ``mesh`` is passed to the learner.
    """
    env_id = env if isinstance(env, str) else env.spec.id
    cfg = RunConfig(
        env=env_id, learner=learner, steps=steps, seed=seed, out_dir=str(out_dir), val_every=val_every,
        val_tasks=val_tasks, checkpoint_every=checkpoint_every, eval_batch=eval_batch, log_every=log_every,
        resume=resume, overrides=overrides or {}, env_overrides=env_overrides or {}, progress=progress,
        write_result=write_result, log_dir=None if log_dir is None else str(log_dir),
    )
    return run_config(cfg, env=None if isinstance(env, str) else env, mesh=mesh, callback=callback)


#: env options a run may change for its training tasks only (``RunConfig.train_env_overrides``)
TRAIN_ENV_KEYS = frozenset({"ways", "queries"})


def _check_train_env_overrides(cfg: RunConfig, learner_id: str, cls: type) -> None:
    if set(cfg.train_env_overrides) - TRAIN_ENV_KEYS:
        raise ConfigError(
            f"train-env overrides may set {', '.join(sorted(TRAIN_ENV_KEYS))} only (training and testing must "
            f"share the data, split and shots); got {', '.join(sorted(cfg.train_env_overrides))}"
        )
    if "ways" in cfg.train_env_overrides and not getattr(cls, "any_ways", False):
        raise ConfigError(
            f"learner {learner_id!r} has an N-way output and cannot train on another number of ways than "
            f"it is tested on; drop 'ways' from the train-env overrides or use a learner such as "
            f"protonet / es-protonet"
        )


def make_train_env(cfg: RunConfig, env: Any) -> Any:
    """The env training tasks come from: ``env`` itself, or ``env`` with ``cfg.train_env_overrides``."""
    if not cfg.train_env_overrides:
        return env
    import metabench

    return metabench.make(env.spec.replace(data_hash=None), **cfg.train_env_overrides)


def prepare(cfg: RunConfig, env: Any = None, mesh: Any = None) -> tuple[Any, str, Any]:
    """Check the learner/env pair and the overrides, then build ``(env, learner_id, learner)``.

    Everything that can be checked without data (kind support, config keys) is checked
    before the env is built, so a bad command fails in milliseconds.
    """
    import metabench
    from metabench.learner import learner_class, learner_registry, learner_spec, make_config, make_learner

    learner_id = learner_registry.resolve(cfg.learner)
    cls = learner_class(learner_id)
    kind = env.spec.kind if env is not None else metabench.spec(cfg.env).kind
    if kind not in getattr(cls, "kinds", ()):
        raise ConfigError(
            f"learner {learner_id!r} does not support {kind} envs like {cfg.env!r}; it supports: "
            f"{', '.join(sorted(cls.kinds)) or 'nothing'}"
        )
    make_config(cls, {**learner_spec(learner_id).defaults, **cfg.overrides},
                where=f"learner {learner_id!r}")
    _check_train_env_overrides(cfg, learner_id, cls)
    if env is None:
        env = metabench.make(cfg.env, **cfg.env_overrides)
    elif cfg.env_overrides:
        raise ConfigError("env_overrides apply to env ids only; pass them to metabench.make for a built env")
    return env, learner_id, make_learner(learner_id, env, mesh=mesh, **cfg.overrides)


def resolve_defaults(cfg: RunConfig, learner: Any) -> RunConfig:
    """``cfg`` with ``steps`` / ``val_every`` left at None set to the learner's choice for its env
    (``Learner.default_steps`` / ``default_val_every``), else the harness defaults."""
    def pick(own: int | None, learner_value: int | None, default: int) -> int:
        if own is not None:
            return own
        return int(learner_value) if learner_value is not None else default

    return dataclasses.replace(
        cfg,
        steps=pick(cfg.steps, getattr(learner, "default_steps", None), DEFAULT_STEPS),
        val_every=pick(cfg.val_every, getattr(learner, "default_val_every", None), DEFAULT_VAL_EVERY),
    )


def resume_command(cfg: RunConfig) -> str:
    """The ``metabench run`` command line that resumes ``cfg``."""
    parts = ["metabench", "run", "--env", cfg.env, "--learner", cfg.learner, "--steps", str(cfg.steps),
             "--seed", str(cfg.seed), "--out", cfg.out_dir, "--val-every", str(cfg.val_every),
             "--val-tasks", str(cfg.val_tasks), "--checkpoint-every", str(cfg.checkpoint_every)]
    for flag, items in (("--set", cfg.overrides), ("--env-set", cfg.env_overrides),
                        ("--train-env-set", cfg.train_env_overrides)):
        for k, v in items.items():
            parts += [flag, f"{k}={v}"]
    if cfg.log_dir is not None:
        parts += ["--log-dir", cfg.log_dir] + (["--tensorboard"] if cfg.tensorboard else [])
    return shlex.join([*parts, "--resume"])


def _copy(tree: Any) -> Any:
    """A device copy, safe against learners that donate their input buffers."""
    return jax.tree_util.tree_map(lambda x: x.copy() if isinstance(x, jax.Array) else x, tree)


def _scalars(metrics: Any) -> dict[str, float | None]:
    """The scalar entries of a learner's metrics dict as Python floats (None where not finite)."""
    out: dict[str, float | None] = {}
    for k, v in jax.device_get(dict(metrics)).items():
        arr = np.asarray(v)
        if arr.size == 1 and (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            x = float(arr.reshape(()))
            out[str(k)] = x if math.isfinite(x) else None
    return out


def run_config(cfg: RunConfig, *, env: Any = None, mesh: Any = None, callback: Callback | None = None) -> Result:
    """``run`` from a ``RunConfig`` (and optionally an already built env)."""
    code_at_start = provenance.code_version()  # what this run executes, even if the checkout changes under it
    env, learner_id, learner = prepare(cfg, env, mesh)
    cfg = resolve_defaults(cfg, learner)
    assert cfg.steps is not None and cfg.val_every is not None  # resolved
    kind = env.spec.kind
    metric, higher = metric_for(kind)
    val_n = min(cfg.val_tasks, env.num_eval_tasks) if cfg.val_every else 0
    train_env = make_train_env(cfg, env)
    chash = config_hash(env.spec.to_dict(), learner_id, learner.config.hash_dict(),
                        steps=cfg.steps, val_every=cfg.val_every, val_tasks=val_n,
                        train_env=train_env.spec.to_dict() if train_env is not env else None)
    name = run_name(env.spec.id, learner_id, chash, cfg.seed)
    run_dir = Path(cfg.out_dir) / "runs" / name
    ckpt = run_dir / "checkpoint.npz"

    root = jax.random.key(cfg.seed)
    init_key, train_key = jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)
    meta_batch = int(learner.config.meta_batch)
    state = learner.init(init_key)
    best_state: Any = None
    book: dict[str, Any] = {"best_value": None, "best_step": None, "last_val_step": 0, "history": [],
                            "loss_sum": 0.0, "loss_count": 0, "train_time_s": 0.0, "val_time_s": 0.0,
                            "last_loss": None}
    step = 0
    resumed_from = None
    notes = []
    if cfg.resume and ckpt.exists():
        trees, meta = load_checkpoint(ckpt, {"state": state, "best": state})
        if meta.get("config_hash") != chash:
            raise ConfigError(
                f"checkpoint {ckpt} was written by a run with a different configuration "
                f"(config hash {str(meta.get('config_hash'))[:8]} != {chash[:8]}); "
                "run without --resume to start over"
            )
        state, step, book = trees["state"], int(meta["step"]), dict(meta["book"])
        best_state = trees["best"] if book["best_step"] is not None else None
        resumed_from = step
        notes.append(f"resuming {name} from step {step} ({ckpt})")
    elif cfg.resume:
        notes.append(f"no checkpoint at {ckpt}; starting {name} from step 0")
    bar = Progress(cfg.steps, initial=step, desc=f"{env.spec.id} {learner_id}", enabled=cfg.progress)
    shown = [step]
    for note in notes:
        bar.write(note)

    # The env's arrays (an image pool) go in as an argument, not as compiled-in constants.
    # A learner that trains on something other than episodes (transfer learners pre-train on the
    # env's non-episodic view) provides ``train_batches(env) -> (sample(data, key, step), data)``;
    # its batches are a pure function of the run's data key and the step, so a resumed run draws
    # the same ones. Episodic learners keep the episodic sampler, unchanged. An epoch sampler
    # (``classification.EpochSampler``) gets its epoch's order computed once per epoch, here, and
    # the step only slices and gathers (the same batches).
    batches = getattr(learner, "train_batches", None)
    if batches is None:
        sample_train, train_data = train_env.batch_sampler(meta_batch, "train")
    else:
        sample_batch, train_data = batches(train_env)
        data_key = jax.random.fold_in(root, 2)
    by_epoch = batches is not None and hasattr(sample_batch, "from_order")

    def fused(state: Any, t: jax.Array, data: Any, order: Any) -> Any:
        k_task, k_learn = jax.random.split(jax.random.fold_in(train_key, t))
        if batches is None:
            batch = sample_train(data, k_task)
        elif by_epoch:
            batch = sample_batch.from_order(data, order, data_key, t)
        else:
            batch = sample_batch(data, data_key, t)
        return learner.meta_train_step(state, batch, k_learn)

    # learners that simulate on the host (MuJoCo MAML-RL) set jittable = False and jit inside
    jitted = jax.jit(fused) if getattr(learner, "jittable", True) else fused
    epoch_order = jax.jit(sample_batch.epoch_order) if by_epoch else None
    orders: dict[int, Any] = {}  # the current epoch's order

    def train_step(state: Any, t: Any) -> Any:
        if epoch_order is None:
            return jitted(state, t, train_data, None)
        epoch = int(t) // sample_batch.steps_per_epoch
        if epoch not in orders:
            orders.clear()
            orders[epoch] = epoch_order(data_key, np.int32(epoch))
        return jitted(state, t, train_data, orders[epoch])
    evaluator = Evaluator(learner, env, cfg.eval_batch)
    last_ckpt: dict[str, Any] = {"step": step if resumed_from is not None else None}
    pending: list[tuple[int, jax.Array]] = []
    last_metrics: list[Any] = [None]

    writer = jax.process_index() == 0  # multi-process runs: one process writes checkpoints and results
    load_meta = checkpoint_load_meta(env, learner, cfg.overrides)
    mlog = open_log(cfg, name, env, learner_id, chash, step) if writer else None
    log_pending: list[tuple[int, Any]] = []

    def checkpoint(cur_state: Any, cur_step: int) -> None:
        best = best_state if best_state is not None else cur_state
        if writer:
            save_checkpoint(ckpt, {"state": cur_state, "best": best},
                            {"step": cur_step, "config_hash": chash, "seed": cfg.seed, "env": env.spec.id,
                             "learner": learner_id, "rng": {"seed": cfg.seed, "next_step": cur_step},
                             **load_meta,  # what metabench.load needs without the result record
                             "book": {**book, "train_time_s": book["train_time_s"] + time.perf_counter() - t0}})
        last_ckpt["step"] = cur_step

    def flush() -> None:
        """Pull pending losses to the host; stop on the first non-finite one."""
        if not pending:
            return
        values = np.asarray(jax.device_get([v for _, v in pending]), dtype=np.float64)
        for (t, _), v in zip(pending, values):
            if not math.isfinite(v):
                where = (f"the last good checkpoint is {ckpt} (step {last_ckpt['step']}); resume from it with "
                         f"different settings by copying it, or lower the learning rate"
                         if last_ckpt["step"] is not None else "no checkpoint was written yet")
                pending.clear()
                raise NonFiniteLossError(f"{name}: loss is {v} at step {t}; stopping. {where}")
            book["loss_sum"] += float(v)
            book["loss_count"] += 1
            book["last_loss"] = float(v)
        pending.clear()
        if mlog is not None and log_pending:
            for t, m in log_pending:
                mlog.train(t, _scalars(m))
            log_pending.clear()
            mlog.flush()
        if last_metrics[0] is not None:  # kept in the book, so a resumed run records it too
            book["final_metrics"] = _scalars(last_metrics[0])

    # learners that count what they train on (images per step, steps per epoch) get it shown
    per_step = getattr(learner, "examples_per_step", None)
    per_epoch = getattr(learner, "steps_per_epoch", None)
    last_shown = [time.perf_counter()]

    def show(cur_step: int, **postfix: Any) -> None:
        now = time.perf_counter()
        if per_step and cur_step > shown[0] and now > last_shown[0]:
            postfix["img/s"] = f"{per_step * (cur_step - shown[0]) / (now - last_shown[0]):.0f}"
        if per_epoch:
            postfix["epoch"] = f"{cur_step / per_epoch:.2f}"
        bar.update(cur_step - shown[0], **postfix)
        shown[0] = cur_step
        last_shown[0] = now

    def validate(cur_state: Any, cur_step: int) -> None:
        nonlocal best_state
        t_val = time.perf_counter()
        curves = evaluator.curves(cur_state, "val", val_n)
        value = float(curves[:, -1].mean())
        ci = float(1.96 * curves[:, -1].std() / math.sqrt(val_n))
        loss = book["loss_sum"] / book["loss_count"] if book["loss_count"] else None
        book["history"].append({"step": cur_step, "value": value, "ci95": ci, "train_loss": loss})
        if mlog is not None:
            mlog.validation(cur_step, metric, value, ci, loss)
        book["loss_sum"], book["loss_count"] = 0.0, 0
        if is_better(value, book["best_value"], higher):
            book["best_value"], book["best_step"] = value, cur_step
            best_state = _copy(cur_state)
        book["last_val_step"] = cur_step
        book["val_time_s"] += time.perf_counter() - t_val

    cur = (state, step)
    t0 = time.perf_counter()
    try:
        while True:
            state, step = cur
            if cfg.val_every and step > 0 and (step % cfg.val_every == 0 or step == cfg.steps) \
                    and book["last_val_step"] != step:
                flush()
                validate(state, step)
                show(step, loss=book["last_loss"], **{f"val_{metric}": book["history"][-1]["value"]})
            if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step > 0):
                if last_ckpt["step"] != step:
                    flush()
                    checkpoint(state, step)
            if step == cfg.steps:
                break
            new_state, metrics = train_step(state, np.int32(step))
            cur = (new_state, step + 1)
            pending.append((step, metrics["loss"]))
            if mlog is not None:
                log_pending.append((step + 1, metrics))
            last_metrics[0] = metrics
            if callback is not None:
                callback(step + 1, new_state, metrics)
            if len(pending) >= cfg.log_every:
                flush()
                show(step + 1, loss=book["last_loss"])
    except KeyboardInterrupt:
        state, step = cur
        bar.close()
        flush()
        checkpoint(state, step)
        raise RunInterrupted(
            f"interrupted at step {step}/{cfg.steps}; checkpoint written to {ckpt}. "
            f"Resume with: {resume_command(cfg)}",
            ckpt,
        ) from None
    finally:
        bar.close()
    flush()
    train_time = book["train_time_s"] + time.perf_counter() - t0
    step_time = train_time - book["val_time_s"]
    final_state = state
    evaluated = best_state if best_state is not None else final_state

    t1 = time.perf_counter()
    try:
        test_curves = evaluator.curves(evaluated, "test")
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted during the test evaluation; training is complete and checkpointed in {ckpt}. "
            f"Evaluate with: {resume_command(cfg)}",
            ckpt,
        ) from None
    eval_time = time.perf_counter() - t1
    final_metrics = dict(book.get("final_metrics") or {})
    collapse = detect_collapse(env.spec.kind, getattr(env, "ways", None), final_metrics, book["history"])
    if collapse["detected"]:
        bar.write(f"{name}: collapse detected: {'; '.join(collapse['reasons'])}")

    code_now = provenance.code_version()
    if code_now != code_at_start:
        code_at_start = {**code_at_start, "changed_during_run": True, "at_end": code_now}
    record = build_record(
        code=code_at_start,
        name=name, env=env, learner_id=learner_id, learner=learner, overrides=dict(cfg.overrides),
        config_hash=chash, seed=cfg.seed, mesh=mesh,
        run={"steps": cfg.steps, "meta_batch": meta_batch, "val_every": cfg.val_every, "val_tasks": val_n,
             "checkpoint_every": cfg.checkpoint_every, "eval_batch": cfg.eval_batch,
             "resumed_from": resumed_from,
             "train_env": jsonable(train_env.spec.to_dict()) if train_env is not env else None},
        test_curves=test_curves,
        validation={"metric": metric, "split": "val", "higher_is_better": higher, "n_tasks": val_n,
                    "best_step": book["best_step"], "best_value": book["best_value"],
                    "history": book["history"]},
        train={"steps": cfg.steps, "tasks": cfg.steps * meta_batch, "wall_time_s": train_time,
               "validation_time_s": book["val_time_s"],
               "tasks_per_s": cfg.steps * meta_batch / step_time if step_time > 0 else None,
               "final_loss": book["last_loss"], "final_metrics": final_metrics, "collapse": collapse,
               **({"examples_per_step": int(per_step),
                   "examples_per_s": cfg.steps * per_step / step_time if step_time > 0 else None}
                  if per_step else {})},
        eval_wall_s=eval_time,
    )
    if mlog is not None:
        mlog.test(cfg.steps, record["metrics"][0])
        mlog.close()
    path = None
    if cfg.write_result and writer:
        from metabench.leaderboard.store import write_result

        path = write_result(record, Path(cfg.out_dir) / "results")
    return Result(record=record, path=path, state=evaluated, final_state=final_state, checkpoint=ckpt)
