"""Canonical configurations: what one learner's row on the main leaderboard page means.

A result is *canonical* for ``(env, learner)`` when its config hash equals the hash of the
run ``metabench run --env ENV --learner LEARNER`` makes with no other option: the learner's
registered defaults as its constructor resolves them for that env, its published budget
(``Learner.default_steps`` / ``default_val_every``, else the harness defaults) and the env's
registered spec. A few (env, learner) pairs whose published budget this machine cannot
afford carry a labelled budget of their own (``BUDGETS``), and their canonical hash is that
run's. Everything else is an experiment (``metabench.leaderboard.experiments``).

Computing a hash builds the env and the learner (no training, no data beyond what
``metabench.make`` loads; ~40 ms a pair). ``leaderboard/canonical.json`` keeps the last
computed table with a fingerprint of the code it was computed with (every ``.py`` of
metabench, its envs and baselines, and both registries): the page reuses it while the
fingerprint matches, and a machine that cannot build an env (no data, no MuJoCo) renders the
same page from it. ``metabench canonical`` always recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metabench.atomic import atomic_write_text

#: file (in the leaderboard directory) holding the last computed canonical table
CANONICAL_FILE = "canonical.json"


@dataclass(frozen=True)
class Budget:
    """A labelled budget instead of the published one: ``steps`` and learner ``overrides``."""

    steps: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    label: str = "reduced budget"
    val_every: int | None = None


_MUJOCO = {"episodes": "10", "horizon": "200", "meta_batch": "10", "outer": "ppo"}
#: ``(env id, learner id) -> Budget``: MuJoCo keeps the budget its committed runs had (a CPU
#: sample of 10 episodes x 10 tasks per step; Finn et al. trained 500 TRPO steps on 20 x 40)
BUDGETS: dict[tuple[str, str], Budget] = {
    ("halfcheetah-vel-v0", "maml-rl"): Budget(400, _MUJOCO, "reduced budget: 400 PPO steps, 10 tasks x 10 episodes", 0),
    ("halfcheetah-dir-v0", "maml-rl"): Budget(400, _MUJOCO, "reduced budget: 400 PPO steps, 10 tasks x 10 episodes", 0),
    ("ant-dir-v0", "maml-rl"): Budget(100, _MUJOCO, "reduced budget: 100 PPO steps, 10 tasks x 10 episodes", 0),
}
#: The learned update rules on omniglot-lite (``benchmarks/reproduce/seed003_omniglot.py``):
#: seed 003 trains them on miniImageNet/CUB for 30K+ episodes; here what a 2-core CPU affords.
SEED003_OMNIGLOT: dict[str, Budget] = {
    "meta-lstm": Budget(100, {}, "reduced budget: 100 episodes (meta-batch 1), no validation", 0),
    "meta-lstm-plus": Budget(60, {}, "reduced budget: 60 episodes (meta-batch 1), no validation", 0),
    "turtle": Budget(60, {"meta_batch": 4}, "reduced budget: 60 steps x 4 tasks, no validation", 0),
    "turtle-fo": Budget(60, {"meta_batch": 4}, "reduced budget: 60 steps x 4 tasks, no validation", 0),
}
BUDGETS.update({(env, lid): b for env in ("omniglot-lite-5w1s-v0", "omniglot-lite-5w5s-v0")
                for lid, b in SEED003_OMNIGLOT.items()})
#: Seed 003 Figure 3.3's protocol on sinusoid-5s (``benchmarks/reproduce/seed003_sinusoid.py``):
#: 70K training tasks (2,800 steps of 25), validation every 2.5K tasks (on 100 tasks, not 1K).
_FIG33 = Budget(2800, {}, "seed 003 Fig. 3.3: 70K tasks (2,800 x 25), val every 2.5K", 100)
BUDGETS.update({("sinusoid-5s-v0", lid): _FIG33 for lid in ("maml", "meta-lstm", "turtle")})


@dataclass(frozen=True)
class Canonical:
    """The canonical run of ``learner`` on ``env``: its settings and config hash."""

    env: str
    learner: str
    config_hash: str
    steps: int
    val_every: int
    val_tasks: int
    overrides: Mapping[str, Any]
    config: Mapping[str, Any]
    budget: str  # "published" (the learner's own budget for the env), "harness default" or a Budget label

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overrides": dict(self.overrides), "config": dict(self.config)}


def table_learners(kind: str) -> list[str]:
    """The learner ids a table of ``kind`` lists, in registration order (the learner table);
    an id registered with the same entry point and defaults as an earlier one (an alias:
    ``finetune`` = ``baseline``) is left out."""
    from metabench.learner import learner_class, learner_registry

    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for lid in learner_registry:
        spec = learner_registry[lid]
        key = (spec.entry_point, json.dumps(dict(spec.defaults), sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        try:
            cls = learner_class(lid)
        except Exception:  # noqa: BLE001 - an optional extra missing: that learner has no table row
            continue
        if kind in getattr(cls, "kinds", ()):
            out.append(lid)
    return out


def aliases() -> dict[str, str]:
    """``alias id -> the earlier id it duplicates`` (same entry point and defaults)."""
    from metabench.learner import learner_registry

    first: dict[tuple[str, str], str] = {}
    out: dict[str, str] = {}
    for lid in learner_registry:
        spec = learner_registry[lid]
        key = (spec.entry_point, json.dumps(dict(spec.defaults), sort_keys=True, default=str))
        if key in first:
            out[lid] = first[key]
        else:
            first[key] = lid
    return out


def canonical_run(env: Any, learner_id: str) -> Canonical:
    """The canonical run of ``learner_id`` on the built ``env`` (same hash as ``run_config``)."""
    from metabench.harness.config import DEFAULT_STEPS, RunConfig, config_hash
    from metabench.harness.record import jsonable
    from metabench.harness.train import prepare, resolve_defaults

    budget = BUDGETS.get((env.spec.id, learner_id))
    cfg = RunConfig(env=env.spec.id, learner=learner_id, steps=budget.steps if budget else None,
                    val_every=budget.val_every if budget else None, overrides=dict(budget.overrides) if budget else {})
    env, lid, learner = prepare(cfg, env)
    cfg = resolve_defaults(cfg, learner)
    val_n = min(cfg.val_tasks, env.num_eval_tasks) if cfg.val_every else 0
    chash = config_hash(env.spec.to_dict(), lid, learner.config.hash_dict(), steps=cfg.steps,
                        val_every=cfg.val_every, val_tasks=val_n)
    label = budget.label if budget else (
        "published" if getattr(learner, "default_steps", None) is not None else f"harness default ({DEFAULT_STEPS})")
    return Canonical(env.spec.id, lid, chash, int(cfg.steps), int(cfg.val_every), int(val_n), dict(cfg.overrides),
                     jsonable(learner.config.to_dict()), label)


def compute_canonical(env_ids: Iterable[str]) -> tuple[dict[tuple[str, str], Canonical], dict[str, str]]:
    """``({(env, learner): Canonical}, {env or env/learner: why it could not be computed})``
    for every table learner of every env in ``env_ids``."""
    import metabench

    out: dict[tuple[str, str], Canonical] = {}
    problems: dict[str, str] = {}
    for env_id in env_ids:
        try:
            env = metabench.make(env_id)
        except Exception as e:  # noqa: BLE001 - no data / no MuJoCo here: reported, the cache is used
            problems[env_id] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            continue
        for lid in table_learners(env.spec.kind):
            try:
                out[(env.spec.id, lid)] = canonical_run(env, lid)
            except Exception as e:  # noqa: BLE001 - a learner that refuses this env has no row
                problems[f"{env.spec.id}/{lid}"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    return out, problems


def code_fingerprint() -> str:
    """sha256 of the source that decides canonical settings: every ``.py`` file of metabench,
    ``metabench.envs`` and ``metabench.baselines``, and the env and learner registries."""
    import metabench
    import metabench.baselines
    import metabench.envs
    from metabench.learner import learner_registry
    from metabench.registry import registry

    h = hashlib.sha256()
    for pkg in (metabench, metabench.envs, metabench.baselines):
        root = Path(pkg.__file__).parent
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    for table in (registry, learner_registry):
        for key in table:
            h.update(repr(table[key]).encode() + b"\0")
    return h.hexdigest()


def _read(path: str | Path) -> tuple[dict[tuple[str, str], Canonical], str | None]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = {(r["env"], r["learner"]): Canonical(**r) for r in data["canonical"]}
        return rows, data.get("fingerprint")
    except (OSError, ValueError, KeyError, TypeError):
        return {}, None


def read_canonical(path: str | Path) -> dict[tuple[str, str], Canonical]:
    """The table ``write_canonical`` wrote (``{}`` when there is none or it is unreadable)."""
    return _read(path)[0]


def write_canonical(path: str | Path, table: Mapping[tuple[str, str], Canonical], fingerprint: str | None = None) -> Path:
    rows = [table[k].to_dict() for k in sorted(table)]
    data = {"version": 1, "fingerprint": fingerprint, "canonical": rows}
    return atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def resolve_canonical(env_ids: Iterable[str], cache: str | Path | None) -> tuple[dict[tuple[str, str], Canonical], dict[str, str]]:
    """Canonical runs for ``env_ids``: from ``cache`` when it was computed by this code
    (``code_fingerprint``) and covers them, else computed, with the cached ones for envs that
    cannot be built here; rewrites ``cache`` when anything was computed."""
    env_ids = list(dict.fromkeys(env_ids))
    cached, stamp = _read(cache) if cache else ({}, None)
    fingerprint = code_fingerprint()
    if cache and stamp == fingerprint and set(env_ids) <= {e for e, _ in cached}:
        return {k: v for k, v in cached.items() if k[0] in env_ids}, {}
    fresh, problems = compute_canonical(env_ids)
    built = {e for e, _ in fresh}
    table = {k: v for k, v in cached.items() if k[0] not in built}
    table.update(fresh)
    for env_id in env_ids:
        if env_id in problems and any(k[0] == env_id for k in table):
            problems[env_id] += " (canonical settings from canonical.json)"
    if cache and fresh:
        # stamped only when every env was built here: a table with cached parts is recomputed next time
        unbuilt = [e for e in env_ids if e in problems]  # env-level problems (learner refusals are code too)
        write_canonical(cache, table, None if unbuilt else fingerprint)
    return table, problems
