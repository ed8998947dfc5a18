"""The canonical set: which (env, learner, seed) runs the main page is made of.

Every table learner (``canonical.table_learners``) of every env in ``PLAN_ENVS``, seeds
``SEEDS``, each with its canonical settings (``canonical.canonical_run``). ``metabench
canonical`` lists the runs with their budgets and which are present, and runs the missing ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from metabench.harness.config import run_name
from metabench.leaderboard.canonical import Canonical

#: the env families this machine can run at their published budget, plus MuJoCo (``BUDGETS``)
PLAN_ENVS: tuple[str, ...] = (
    "sinusoid-5s-v0", "sinusoid-10s-v0",
    "omniglot-lite-5w1s-v0", "omniglot-lite-5w5s-v0", "omniglot-lite-20w1s-v0",
    "nav2d-easy-v0", "nav2d-hard-v0", "point-nav-v0",
    "halfcheetah-vel-v0", "halfcheetah-dir-v0", "ant-dir-v0",
)
#: training seeds of every canonical configuration
SEEDS: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class PlannedRun:
    canonical: Canonical
    seed: int
    present: bool

    @property
    def name(self) -> str:
        return run_name(self.canonical.env, self.canonical.learner, self.canonical.config_hash, self.seed)

    def command(self, out_dir: str, checkpoint_every: int) -> list[str]:
        """The ``metabench run`` command (no ``--steps``: the canonical budget is the default)."""
        c = self.canonical
        cmd = ["metabench", "run", "--env", c.env, "--learner", c.learner, "--seed", str(self.seed), "--out", out_dir,
               "--checkpoint-every", str(checkpoint_every), "--resume", "--no-progress"]
        if c.budget.startswith("reduced"):
            cmd += ["--steps", str(c.steps), "--val-every", str(c.val_every)]
            for k, v in c.overrides.items():
                cmd += ["--set", f"{k}={v}"]
        return cmd


def plan_runs(table: Mapping[tuple[str, str], Canonical], results_dir: str | Path,
              seeds: Iterable[int] = SEEDS) -> list[PlannedRun]:
    """Every planned run of ``table`` in env, learner-table, seed order; ``present`` when its
    result file exists in ``results_dir`` (the name is the config hash's, so only a canonical run counts)."""
    results_dir = Path(results_dir)
    out = []
    for c in table.values():
        for s in seeds:
            name = run_name(c.env, c.learner, c.config_hash, s)
            out.append(PlannedRun(c, s, (results_dir / f"{name}.json").exists()))
    return out
