"""DMAML: distributed MAML with weight generators (seed 002, chapter 4, Algorithms 4 and 5).

One DMAML *run* (Algorithm 5, lines 3-7; Figure 4.1): the common meta-model
``theta_{i, DMAML}`` is handed to ``workers`` MAML workers; worker ``j`` runs ``epochs`` MAML
meta-steps (the MAML learner's own ``meta_train_step``: regression, classification, or
MAML-RL on RL envs) from it on its own tasks, collecting its meta-model
``theta_{i+1, MAML, w_j}`` and its epoch losses; a weight generator ``G``
(``metabench.baselines.weight_generators``) merges the workers' meta-models into
``theta_{i+1, DMAML}``. The harness sees one learner: one ``meta_train_step`` is one run.

Tasks. ``meta_batch`` (the tasks the harness passes per step) is ``workers * epochs *
tasks``, where ``tasks`` is the MAML meta-batch of one epoch (the thesis's "number of
tasks", Table 5.1-5.3); the harness's batch is read as ``[workers, epochs, tasks]`` (row
``j`` is worker ``j``'s). Set either ``tasks`` or ``meta_batch`` (the other follows; both
must agree). The harness draws the batch from the run seed and the step only, so a
worker's tasks do not depend on the devices; its learner key for epoch ``e`` of a run is
``fold_in(fold_in(key, j), e)`` (MAML-RL samples its trajectories with it). The "seen
tasks per run" of the thesis's Table 6.2 is then ``meta_batch``.

Workers on devices. The workers are a named mesh axis ``workers``; each device runs
``workers / devices`` of them (``worker_map``: ``vmap``, ``map`` -- ``lax.map``, one after the
other -- or ``unroll``), the generator's weights are computed from the all-gathered
losses (``[workers, epochs]`` floats) and the merge is one ``psum`` of the weighted
parameters; the state is replicated. Runs unchanged on one device, on simulated CPU
devices and across processes (``jax.distributed``; ``metabench.distributed``). MuJoCo
envs, simulated on the host, run the workers one after another in Python instead.

Adam state (``adam_state``; section 4.3 does not say; Algorithm 4 line 4 "Create MAML
worker with theta_i" in every run): ``"keep"`` (default) -- every worker keeps its own
Adam moments and step count from run to run, only its parameters are replaced by the
common meta-model; with one worker, one epoch and any generator DMAML is then MAML step
for step (the section 6.1 implementation test, tested). ``"reset"`` -- the literal reading
of line 4: a fresh Adam state every run (with one epoch every step is Adam's first,
``beta * g / (|g| + eps)``, a sign-like step). ``"mean"`` -- the moments are merged like the
parameters (plain mean over all workers) and every worker continues from the mean.

Loss history: the last ``history`` (thesis: 5) epoch losses of every worker,
``float32[workers, history]`` in the state (so it survives checkpoints). A worker's
epoch loss is the MAML step's ``loss`` metric (mean query loss of its tasks at the
pre-update parameters); on RL envs it is ``-return_post`` (``judge``), since the outer
surrogate's value says little about how good a policy is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from metabench.baselines.maml import MAML, MamlState
from metabench.baselines.weight_generators import check_g, weight_generator
from metabench.distributed import axis_mesh, check_process_count, is_traced, per_shard, place_replicated
from metabench.errors import ConfigError
from metabench.learner import Learner, Metrics, make_learner
from metabench.tasks import PRNGKey, Task

WORKERS = "workers"
ADAM_STATES = ("keep", "reset", "mean")
WORKER_MAPS = ("auto", "vmap", "map", "unroll")


class DmamlState(NamedTuple):
    """DMAML learner state (replicated over the ``workers`` mesh).

    params: the common meta-model ``theta_{i, DMAML}`` (the MAML params pytree).
    opt_state: every worker's Adam state, leaves ``[workers, ...]``.
    worker_step: int32[workers] MAML meta-steps each worker has taken.
    history: float32[workers, history] the last epoch losses per worker, oldest first.
    filled: int32[] valid (newest) columns of ``history``.
    step: int32[] DMAML runs done.
    """

    params: Any
    opt_state: Any
    worker_step: jax.Array
    history: jax.Array
    filled: jax.Array
    step: jax.Array


def _tree_stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _tree_row(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


class DMAML(Learner):
    """Distributed MAML (seed 002 Algorithm 5); see the module docstring."""

    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression", "rl"})

    @dataclasses.dataclass(frozen=True)
    class Config(MAML.Config):
        """MAML's fields (the workers' MAML; ``meta_batch`` is DMAML's, see below) plus:

        workers: MAML workers per run (``w``, Algorithm 4); epochs: MAML meta-steps per worker
            and run; tasks: MAML meta-batch of one epoch (0: from ``meta_batch``, else MAML's
            default for the env). meta_batch: tasks per run = ``workers * epochs * tasks``.
        generator: weight generator name (``weight_generators``: ``plain``, ``loss-median``,
            ``weighted``, ``loss-moving-average``); g: its factor (``weighted``), ``0 < g <= 1``.
        history: epoch losses kept per worker (the thesis: 5).
        adam_state: ``"keep"``, ``"reset"`` or ``"mean"`` (module docstring).
        worker_map: how a device runs its workers: ``"vmap"``, ``"map"``, ``"unroll"``;
            ``"auto"``: ``vmap``. Measured on omniglot-lite-5w1s (Conv-4 16 channels, 4 workers
            x 8 tasks on one shared 2-core CPU): compile + first run / each later run
            vmap 33.6 s / 22 ms, map 25.5 s / 38 ms, unroll 102.8 s / 47 ms.
        devices: 0: the mesh spans every device; n: the first n (must divide ``workers``).
        processes: 0: any; n: refuse to run unless ``jax.process_count() == n``.
        judge: the metric a worker's epoch loss is read from (``-name`` negates it);
            ``"auto"``: ``loss``, or ``-return_post`` on RL envs.
        """

        workers: int = 1
        epochs: int = 1
        tasks: int = 0
        generator: str = "plain"
        g: float = 1.0
        history: int = 5
        adam_state: Literal["keep", "reset", "mean"] = "keep"
        worker_map: Literal["auto", "vmap", "map", "unroll"] = "auto"
        devices: int = 0
        processes: int = 0
        judge: str = "auto"

    def __init__(self, env: Any, config: Config, mesh: Mesh | None = None):
        super().__init__(env, config, mesh)
        c = config
        for name in ("workers", "epochs", "history"):
            v = getattr(c, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"dmaml: {name} must be an integer >= 1, got {v!r}")
        if c.tasks < 0 or c.meta_batch < 0:
            raise ConfigError(f"dmaml: tasks and meta_batch must be >= 0, got {c.tasks} and {c.meta_batch}")
        self.generator = weight_generator(c.generator)
        g = check_g(c.g)
        if g != 1.0 and not self.generator.uses_g:
            raise ConfigError(f"dmaml: g={g} is the factor of the 'weighted' generator; generator={c.generator!r} "
                              "does not use it (set generator=weighted, or drop g)")
        if c.adam_state not in ADAM_STATES:
            raise ConfigError(f"dmaml: adam_state must be one of {', '.join(ADAM_STATES)}, got {c.adam_state!r}")
        if c.worker_map not in WORKER_MAPS:
            raise ConfigError(f"dmaml: worker_map must be one of {', '.join(WORKER_MAPS)}, got {c.worker_map!r}")
        check_process_count(c.processes, "dmaml")
        per_run = c.workers * c.epochs
        tasks = c.tasks
        if tasks == 0 and c.meta_batch:
            if c.meta_batch % per_run:
                raise ConfigError(f"dmaml: meta_batch={c.meta_batch} must be workers * epochs * tasks = "
                                  f"{c.workers} * {c.epochs} * tasks; use a multiple of {per_run}, or set tasks")
            tasks = c.meta_batch // per_run
        inner_fields = {f.name for f in dataclasses.fields(MAML.Config)} - {"meta_batch"}
        inner_kw = {k: getattr(c, k) for k in inner_fields}
        #: the workers' learner (MAML, or MAML-RL on RL envs), built through the learner table
        self.inner = make_learner("maml", env, **inner_kw, meta_batch=tasks)
        tasks = int(self.inner.config.meta_batch)
        if c.meta_batch and c.meta_batch != per_run * tasks:
            raise ConfigError(f"dmaml: meta_batch={c.meta_batch} but workers * epochs * tasks = {c.workers} * "
                              f"{c.epochs} * {tasks} = {per_run * tasks}; set one of meta_batch or tasks")
        judge = c.judge if c.judge != "auto" else ("-return_post" if env.spec.kind == "rl" else "loss")
        worker_map = c.worker_map
        if worker_map == "auto":
            worker_map = "vmap"
        self.config = dataclasses.replace(c, meta_batch=per_run * tasks, tasks=tasks, judge=judge,
                                          worker_map=worker_map)
        self.tasks = tasks
        #: host-simulated envs (MuJoCo): the workers run one after another in Python, un-jitted
        self.jittable = bool(getattr(self.inner, "jittable", True))
        self.eval_per_task = bool(getattr(self.inner, "eval_per_task", False))
        self.default_steps = getattr(self.inner, "default_steps", None)
        self.default_val_every = getattr(self.inner, "default_val_every", None)
        if self.jittable:
            self.worker_mesh = axis_mesh(WORKERS, mesh, devices=c.devices, who="dmaml")
            hint = (", or set devices to one of those (the first n devices)" if mesh is None else "")
            self.local_workers = per_shard(c.workers, self.worker_mesh, WORKERS, "workers", hint=hint)
            self._step = jax.jit(self._sharded_step)
        else:
            if mesh is not None and mesh.devices.size > 1 or jax.process_count() > 1:
                raise ConfigError(f"dmaml: {env.spec.id} is simulated on the host; its workers run one after another "
                                  "in one process (no mesh): drop the mesh / run a single process")
            self.worker_mesh = None
            self.local_workers = c.workers

    # -- the workers -------------------------------------------------------------------------

    def inner_view(self, state: DmamlState) -> MamlState:
        """The MAML state of the common meta-model (what evaluation adapts from)."""
        return MamlState(state.params, (), state.step)

    def _judged(self, metrics: Metrics) -> jax.Array:
        name = self.config.judge
        sign, key = (-1.0, name[1:]) if name.startswith("-") else (1.0, name)
        if key not in metrics:
            raise ConfigError(f"dmaml: judge={name!r} but the worker's metrics are {', '.join(sorted(metrics))}")
        return sign * jnp.asarray(metrics[key], jnp.float32)

    def _worker(self, params: Any, opt: Any, wstep: jax.Array, tasks: Task, key: PRNGKey,
                j: jax.Array) -> tuple[Any, Any, jax.Array, jax.Array, Metrics]:
        """Worker ``j``'s part of a run (Algorithm 5 lines 4-5): ``epochs`` MAML meta-steps.

        tasks: leaves ``[epochs, tasks, ...]``. Returns its params, Adam state, step count,
        its judged losses ``float32[epochs]`` and its metrics (each ``[epochs]``).
        """
        wkey = jax.random.fold_in(key, j)

        def epoch(carry: tuple[Any, Any, jax.Array], xs: tuple[Task, jax.Array]) -> tuple[Any, tuple[jax.Array, Metrics]]:
            p, o, s = carry
            t, e = xs
            new, m = self.inner.meta_train_step(MamlState(p, o, s), t, jax.random.fold_in(wkey, e))
            m = {k: jnp.asarray(v, jnp.float32) for k, v in m.items() if jnp.ndim(v) == 0}
            return (new.params, new.opt_state, new.step), (self._judged(m), m)

        es = jnp.arange(self.config.epochs)
        if self.config.epochs == 1:
            carry, (loss, m) = epoch((params, opt, wstep), (_tree_row(tasks, 0), es[0]))
            loss, m = loss[None], jax.tree.map(lambda x: x[None], m)
        else:
            carry, (loss, m) = jax.lax.scan(epoch, (params, opt, wstep), (tasks, es))
        return carry[0], carry[1], carry[2], loss, m

    def _local_workers(self, params: Any, opt: Any, wstep: jax.Array, tasks: Task, key: PRNGKey,
                       first: jax.Array) -> tuple[Any, Any, jax.Array, jax.Array, Metrics]:
        """The workers ``first .. first + n - 1`` of one device (leading axis ``n``)."""
        n = self.local_workers
        run = lambda o, s, t, j: self._worker(params, o, s, t, key, j)  # noqa: E731
        js = first + jnp.arange(n)
        if n == 1:
            out = run(_tree_row(opt, 0), wstep[0], _tree_row(tasks, 0), js[0])
            return jax.tree.map(lambda x: x[None], out)
        mode = self.config.worker_map
        if mode == "vmap":
            return jax.vmap(run)(opt, wstep, tasks, js)
        if mode == "map":
            return jax.lax.map(lambda a: run(*a), (opt, wstep, tasks, js))
        outs = [run(_tree_row(opt, i), wstep[i], _tree_row(tasks, i), js[i]) for i in range(n)]
        return _tree_stack(outs)

    def _merge_history(self, history: jax.Array, filled: jax.Array, losses: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Append ``losses`` float32[W, E] to the per-worker history, keep the newest ``H`` columns."""
        h = history.shape[1]
        both = jnp.concatenate([history, losses.astype(jnp.float32)], axis=1)[:, -h:]
        return both, jnp.minimum(filled + losses.shape[1], h)

    def _fresh_opt(self, opt: Any) -> Any:
        """A new worker's Adam state: optax's Adam/SGD states are counts and moments, all zero at ``init``."""
        return jax.tree.map(jnp.zeros_like, opt)

    # -- one run, sharded ---------------------------------------------------------------------

    def _sharded_step(self, state: DmamlState, tasks: Task, key: PRNGKey) -> tuple[DmamlState, Metrics]:
        c = self.config
        w, e, b = c.workers, c.epochs, self.tasks
        tasks = jax.tree.map(lambda x: x.reshape(w, e, b, *x.shape[1:]), tasks)
        n = self.local_workers
        gen = self.generator

        def body(params: Any, opt: Any, wstep: jax.Array, tasks: Task, key: PRNGKey, history: jax.Array,
                 filled: jax.Array) -> tuple[Any, ...]:
            first = jax.lax.axis_index(WORKERS) * n
            p_loc, o_loc, s_loc, loss_loc, m_loc = self._local_workers(params, opt, wstep, tasks, key, first)
            losses = jax.lax.all_gather(loss_loc, WORKERS, tiled=True)  # [W, E]: the only pre-merge gather
            hist, fill = self._merge_history(history, filled, losses)
            merge = gen.fn(hist, fill, c.g)
            a_loc = jax.lax.dynamic_slice_in_dim(merge.weights, first, n)
            mean = jax.tree.map(
                lambda x: jax.lax.psum(jnp.tensordot(a_loc.astype(x.dtype), x, axes=1), WORKERS), p_loc)
            new_params = jax.tree.map(lambda m, old: merge.g * m + (1.0 - merge.g) * old, mean, params)
            if c.adam_state == "keep":
                new_opt = jax.lax.all_gather(o_loc, WORKERS, tiled=True)
            elif c.adam_state == "reset":
                new_opt = self._fresh_opt(opt)
            else:  # "mean": the moments merged like the parameters (plain mean), counts kept
                def avg(x: jax.Array) -> jax.Array:
                    if not jnp.issubdtype(x.dtype, jnp.floating):
                        return jax.lax.all_gather(x, WORKERS, tiled=True)
                    m = jax.lax.psum(jnp.sum(x, axis=0), WORKERS) / w
                    return jnp.broadcast_to(m, (w, *x.shape[1:]))
                new_opt = jax.tree.map(avg, o_loc)
            new_wstep = jax.lax.all_gather(s_loc, WORKERS, tiled=True)
            metrics = {k: jax.lax.psum(jnp.sum(v), WORKERS) / (w * e) for k, v in m_loc.items()}
            metrics["kept_workers"] = jnp.sum(merge.weights > 0).astype(jnp.float32)
            return new_params, new_opt, new_wstep, hist, fill, metrics

        rep, row = PartitionSpec(), PartitionSpec(WORKERS)
        out = jax.shard_map(
            body, mesh=self.worker_mesh,
            in_specs=(rep, row, row, row, rep, rep, rep),
            out_specs=(rep, rep, rep, rep, rep, rep),
            # every output is a psum / all_gather result or computed from them: identical on all shards
            check_vma=False,
        )(state.params, state.opt_state, state.worker_step, tasks, key, state.history, state.filled)
        new_params, new_opt, new_wstep, hist, fill, metrics = out
        metrics["update_norm"] = jnp.sqrt(sum(jnp.sum((a - b) ** 2) for a, b in
                                              zip(jax.tree.leaves(new_params), jax.tree.leaves(state.params))))
        return DmamlState(new_params, new_opt, new_wstep, hist, fill, state.step + 1), metrics

    # -- one run on the host (MuJoCo) -----------------------------------------------------------

    def _host_step(self, state: DmamlState, tasks: Task, key: PRNGKey) -> tuple[DmamlState, Metrics]:
        """The same run for host-simulated envs: workers and epochs in Python loops, then the merge."""
        c = self.config
        w, e, b = c.workers, c.epochs, self.tasks
        tasks = jax.tree.map(lambda x: jnp.asarray(x).reshape(w, e, b, *x.shape[1:]), tasks)
        params_w, opts, steps, losses, mets = [], [], [], [], []
        for j in range(w):
            s = MamlState(state.params, _tree_row(state.opt_state, j), state.worker_step[j])
            wkey = jax.random.fold_in(key, j)
            ls, ms = [], []
            for ep in range(e):
                s, m = self.inner.meta_train_step(s, _tree_row(_tree_row(tasks, j), ep), jax.random.fold_in(wkey, ep))
                m = {k: jnp.asarray(v, jnp.float32) for k, v in m.items() if jnp.ndim(v) == 0}
                ls.append(self._judged(m))
                ms.append(m)
            params_w.append(s.params)
            opts.append(s.opt_state)
            steps.append(s.step)
            losses.append(jnp.stack(ls))
            mets.append(_tree_stack(ms))
        hist, fill = self._merge_history(state.history, state.filled, jnp.stack(losses))
        merge = self.generator.fn(hist, fill, c.g)
        stacked = _tree_stack(params_w)
        mean = jax.tree.map(lambda x: jnp.tensordot(merge.weights.astype(x.dtype), x, axes=1), stacked)
        new_params = jax.tree.map(lambda m, old: merge.g * m + (1.0 - merge.g) * old, mean, state.params)
        opt = _tree_stack(opts)
        if c.adam_state == "reset":
            opt = self._fresh_opt(opt)
        elif c.adam_state == "mean":
            opt = jax.tree.map(lambda x: jnp.broadcast_to(jnp.mean(x, 0), x.shape).astype(x.dtype)
                               if jnp.issubdtype(x.dtype, jnp.floating) else x, opt)
        metrics = {k: jnp.mean(v) for k, v in _tree_stack(mets).items()}
        metrics["kept_workers"] = jnp.sum(merge.weights > 0).astype(jnp.float32)
        return DmamlState(new_params, opt, jnp.stack(steps), hist, fill, state.step + 1), metrics

    # -- the Learner protocol ---------------------------------------------------------------------

    def init(self, key: PRNGKey) -> DmamlState:
        """``theta_0`` = MAML's initialisation from ``key`` (Algorithm 4 line 1); every worker's Adam state fresh."""
        c = self.config
        inner = self.inner.init(key)
        opt = jax.tree.map(lambda x: jnp.broadcast_to(x, (c.workers, *jnp.shape(x))), inner.opt_state)
        state = DmamlState(inner.params, opt, jnp.zeros((c.workers,), jnp.int32),
                           jnp.zeros((c.workers, c.history), jnp.float32), jnp.zeros((), jnp.int32),
                           jnp.zeros((), jnp.int32))
        return place_replicated(state, self.worker_mesh) if self.worker_mesh is not None else state

    def meta_train_step(self, state: DmamlState, tasks: Task, key: PRNGKey) -> tuple[DmamlState, Metrics]:
        """One DMAML run on ``meta_batch = workers * epochs * tasks`` tasks (leading axis).

        Metrics: the workers' MAML metrics averaged over workers and epochs (``loss`` ...),
        ``kept_workers`` (workers with a non-zero merge weight) and ``update_norm``.
        """
        n = jax.tree.leaves(tasks)[0].shape[0]
        if n != self.config.meta_batch:
            raise ConfigError(f"dmaml: got {n} tasks, expected meta_batch = workers * epochs * tasks = "
                              f"{self.config.workers} * {self.config.epochs} * {self.tasks} = {self.config.meta_batch}")
        if not self.jittable:
            return self._host_step(state, tasks, key)
        if not is_traced((tasks, key)):
            tasks, key = place_replicated((tasks, key), self.worker_mesh)
        return self._step(state, tasks, key)

    def adapt(self, state: DmamlState, support: Any, key: PRNGKey) -> Any:
        return self.inner.adapt(self.inner_view(state), support, key)

    def predict(self, state: DmamlState, adapted: Any, x: jax.Array) -> jax.Array:
        return self.inner.predict(self.inner_view(state), adapted, x)

    def eval_curve(self, state: DmamlState, task: Task, key: PRNGKey) -> jax.Array:
        """The MAML evaluation curve of the common meta-model (section 5.6: validated after the merge)."""
        return self.inner.eval_curve(self.inner_view(state), task, key)

    def eval_curves(self, state: DmamlState, tasks: Task, keys: PRNGKey) -> Any:
        """Batched evaluation for host-simulated envs (delegated to MAML-RL)."""
        return self.inner.eval_curves(self.inner_view(state), tasks, keys)  # type: ignore[attr-defined]

    def config_dict(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "inner": self.inner.config.to_dict(),
                "mesh_devices": None if self.worker_mesh is None else int(self.worker_mesh.devices.size)}
