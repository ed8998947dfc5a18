"""Conformance checks of RL envs (``kind = "rl"``): ``check_rl_env(env)``.

Called by ``metabench.testing.check_meta_env`` for kind "rl" (after the generic task
checks). A failed check raises ``AssertionError`` naming the check and the env id.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metabench.errors import ConfigError


def _fail(env: Any, check: str, detail: str) -> None:
    raise AssertionError(f"check_rl_env[{env.spec.id}] {check}: {detail}")


def _same(a: Any, b: Any) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _close(a: Any, b: Any) -> bool:
    """Equal up to float rounding (jit fuses ops differently from eager dispatch)."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.shape(x) == np.shape(y) and np.allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5, equal_nan=True)
        for x, y in zip(la, lb)
    )


def _row(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def _expect(env: Any, check: str, exc: type[BaseException] | tuple[type[BaseException], ...], fn: Any) -> None:
    try:
        fn()
    except exc:
        return
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        _fail(env, check, f"raised {type(e).__name__}: {e} instead of {exc}")
    _fail(env, check, f"did not raise {exc}")


def check_tasks(env: Any) -> None:
    """Sampled and frozen tasks pass ``check_params`` unchanged; bad tasks are refused."""
    for split in env.splits:
        task = env.sample_task(jax.random.key(5), split)
        if not isinstance(task, env.params_type):
            _fail(env, "task type", f"expected {env.params_type.__name__}, got {type(task).__name__}")
        if not _same(env.check_params(task), task):
            _fail(env, "check_params", f"a sampled {split} task changed under check_params")
    frozen = jax.device_get(env.eval_tasks("test"))
    for i in range(env.num_eval_tasks):
        env.check_params(_row(frozen, i))
    task = env.sample_task(jax.random.key(5))
    good = task._asdict()
    _expect(env, "unknown task field", ConfigError, lambda: env.check_params({**good, "bogus": 1.0}))
    name = task._fields[0]
    bad_shape = {**good, name: np.zeros((3, *np.shape(good[name])), np.float32)}
    _expect(env, "task field shape", ConfigError, lambda: env.check_params(bad_shape))
    nan = {**good, name: np.full(np.shape(good[name]), np.nan, np.float32)}
    _expect(env, "non-finite task", ConfigError, lambda: env.check_params(nan))


def check_task_env(env: Any, n_steps: int = 5) -> None:
    """gymnasium adapter: ``check_env``, ``set_task`` idempotence, resets keep the task, bad input."""
    from gymnasium.utils.env_checker import check_env

    t0, t1 = env.sample_task(jax.random.key(10)), env.sample_task(jax.random.key(11))
    te = env.task_env(t0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(te, skip_render_check=True)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(te.action_space.low, te.action_space.high).astype(np.float32) for _ in range(n_steps)]

    def run(e: Any) -> list[Any]:
        out = [e.reset(seed=3)[0]]
        for a in actions:
            o, r, term, trunc, _ = e.step(a)
            out.append((o, r, term, trunc))
            if term or trunc:
                break
        return out

    fresh = run(env.task_env(t1))
    te.set_task(t1)
    once = run(te)
    te.set_task(t1)
    te.set_task(t1)
    twice = run(te)
    if not (_same(fresh, once) and _same(once, twice)):
        _fail(env, "set_task", "set_task(p) once, twice, and a fresh task_env(p) gave different episodes")
    before = te.get_task()
    for seed in (0, 1, None):
        te.reset(seed=seed)
    if not _same(before, te.get_task()):
        _fail(env, "reset keeps the task", "reset() changed the task")
    if env.deterministic_reset and not _same(te.reset(seed=1)[0], te.reset(seed=2)[0]):
        _fail(env, "reset keeps the task", "two resets of a task with a fixed start differ")

    # bad input
    te2 = env.task_env(t0)
    _expect(env, "step before reset", RuntimeError, lambda: te2.step(actions[0]))
    te2.reset(seed=0)
    _expect(env, "action shape", ValueError, lambda: te2.step(np.zeros((*te2.action_space.shape, 2), np.float32)))
    _expect(env, "NaN action", ValueError, lambda: te2.step(np.full(te2.action_space.shape, np.nan, np.float32)))
    big = te2.action_space.high * 1e3
    o = te2.step(big)[0]  # clipped, documented
    if not te2.observation_space.contains(np.asarray(o, te2.observation_space.dtype)):
        _fail(env, "clipping", "an out-of-range action produced an observation outside the space")
    te2.reset(seed=0)
    zero = np.zeros(te2.action_space.shape, np.float32)
    for _ in range(env.max_steps):
        _, _, term, trunc, _ = te2.step(zero)
        if term or trunc:
            break
    else:
        _fail(env, "horizon", f"no termination or truncation within max_steps={env.max_steps}")
    _expect(env, "step after the episode ended", RuntimeError, lambda: te2.step(zero))
    _expect(env, "bad set_task", ConfigError, lambda: te2.set_task({"bogus": 0.0}))
    te.close()
    te2.close()


def check_functional(env: Any) -> None:
    """reset/step are pure, jittable, vmap-consistent over tasks, absorbing after ``done``.

    Everything runs jitted (eager dispatch compiles every primitive: slow on CPU).
    """
    from metabench.rollout import rollout, rollout_tasks

    tasks = env.sample_tasks(jax.random.key(20), 3)
    task = _row(tasks, 1)
    key = jax.random.key(21)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    obs, state = reset(key, task)
    if not _same((obs, state), reset(key, task)):
        _fail(env, "reset", "two calls of reset with the same key differ")
    if not env.observation_space.contains(np.asarray(obs)):
        _fail(env, "observation space", f"reset observation {np.asarray(obs)} lies outside the space")
    obs_v, state_v = jax.jit(jax.vmap(env.reset, in_axes=(None, 0)))(key, tasks)
    if not _close(_row(obs_v, 1), obs):
        _fail(env, "vmap reset", "vmap(reset) over tasks, row 1, differs from reset")
    action = jnp.asarray(np.random.default_rng(1).uniform(env.action_space.low, env.action_space.high), jnp.float32)
    out = step(key, state, action, task)
    out_v = jax.jit(jax.vmap(env.step, in_axes=(None, 0, None, 0)))(key, state_v, action, tasks)
    if not _close(_row(out_v, 1), out):
        _fail(env, "vmap step", "vmap(step) over tasks, row 1, differs from step")
    o, _, r, d, info = out
    if np.asarray(r).dtype != np.float32 or np.shape(r) != () or not np.isfinite(np.asarray(r)):
        _fail(env, "reward", f"reward must be a finite float32 scalar, got {r!r}")
    if np.asarray(d).dtype != np.bool_ or not {"terminated", "truncated"} <= set(info):
        _fail(env, "done/info", "done must be bool and info must carry 'terminated' and 'truncated'")
    if not env.observation_space.contains(np.asarray(o)):
        _fail(env, "observation space", f"step observation {np.asarray(o)} lies outside the space")
    _expect(env, "action shape", ConfigError, lambda: jax.eval_shape(env.step, key, state, jnp.zeros((7, 3)), task))

    # fixed-horizon rollouts: absorbing after the end; row i of rollout_tasks is rollout(task i)
    policy = lambda pp, ob, k: jax.random.uniform(  # noqa: E731
        k, env.action_space.shape, minval=jnp.asarray(env.action_space.low), maxval=jnp.asarray(env.action_space.high)
    )
    t = env.max_steps + 3
    rows = jax.jit(lambda tp, k: rollout_tasks(env, policy, None, tp, k, 2, t))(tasks, key)
    traj = jax.jit(lambda tp, k: rollout(env, policy, None, tp, k, 2, t))(task, jax.random.split(key, 3)[1])
    if not _close(_row(rows, 1), traj):
        _fail(env, "rollout_tasks", "row i differs from rollout(task i, split(key, N)[i])")
    m, r, d = np.asarray(rows.mask), np.asarray(rows.rewards), np.asarray(rows.dones)
    if m.shape != (3, 2, t) or np.any(m[..., env.max_steps :]) or np.any(r[..., env.max_steps :]):
        _fail(env, "absorbing", "steps after max_steps were not masked out with reward 0")
    if not np.all(d.sum(-1) == 1):
        _fail(env, "dones", f"each episode must end exactly once, got {d.sum(-1)}")
    if np.any(r[m == 0] != 0):
        _fail(env, "absorbing", "a step after the end of an episode had a non-zero reward")

    # the gymnasium adapter steps the same dynamics (when the start is fixed by the task)
    if env.deterministic_reset:
        te = env.task_env(task)
        o0, _ = te.reset(seed=0)
        obs0, st = reset(key, task)
        rng = np.random.default_rng(2)
        if not np.allclose(o0, np.asarray(obs0)):
            _fail(env, "adapter", "task_env.reset differs from the functional reset")
        for _ in range(5):
            a = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            o1, r1, term, trunc, _ = te.step(a)
            obs0, st, r0, _, _ = step(key, st, jnp.asarray(a), task)
            if not (np.allclose(o1, np.asarray(obs0), atol=1e-6) and np.isclose(r1, float(r0), atol=1e-5)):
                _fail(env, "adapter", "task_env.step differs from the functional step")
            if term or trunc:
                break


def check_vector(env: Any) -> None:
    """Host envs: ``vector_rollout`` shapes, masks and determinism for a fixed key."""
    from metabench.rollout import rollout_tasks

    tasks = env.sample_tasks(jax.random.key(30), 2)
    shape = env.action_space.shape
    policy = lambda pp, ob, k: jax.random.uniform(k, shape, minval=-1.0, maxval=1.0)  # noqa: E731
    a = rollout_tasks(env, policy, None, tasks, jax.random.key(31), 1, 4)
    b = rollout_tasks(env, policy, None, tasks, jax.random.key(31), 1, 4)
    if a.obs.shape != (2, 1, 4, *env.observation_space.shape) or a.rewards.shape != (2, 1, 4):
        _fail(env, "vector rollout", f"unexpected shapes {a.obs.shape}, {a.rewards.shape}")
    if not _same(a, b):
        _fail(env, "vector rollout", "two rollouts with the same key differ")
    if not np.all(np.isfinite(a.rewards)):
        _fail(env, "vector rollout", "non-finite rewards")


def check_rl_env(env: Any) -> None:
    """Every RL check: tasks, the gymnasium adapter, and the functional or vectorised form."""
    from metabench.rl import RLMetaEnv

    if not isinstance(env, RLMetaEnv):
        _fail(env, "type", f"kind 'rl' envs must subclass metabench.rl.RLMetaEnv, got {type(env).__name__}")
    check_tasks(env)
    check_task_env(env)
    if env.functional:
        check_functional(env)
    else:
        check_vector(env)
