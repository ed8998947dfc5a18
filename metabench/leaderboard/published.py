"""Published reference numbers that metabench's results are compared with.

RL (``PUBLISHED_RL``): published reference curves.

Returns before and after 1, 2, 3 adaptation steps, mean over 40 test tasks, one training
run each, as Finn et al. 2017 report them (Fig. 5 and text; ``../shared/GUIDE.md``
anchors). Keys: env id without its version, then the learner id; ``maml_0_and_1`` where
only the return before and after one step is published.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLISHED_RL: dict[str, dict[str, list[float]]] = {
    "point-nav": {"maml": [-40.4, -11.7, -3.3, -3.2]},
    "halfcheetah-vel": {"maml": [-129.5, -78.6, -66.6, -60.8]},
    "halfcheetah-dir": {"maml_0_and_1": [-50.7, 293.2]},
    "ant-dir": {"maml_0_and_1": [8.7, 499.2]},
}


@dataclass(frozen=True)
class Reference:
    """One published number: ``value`` (a fraction for accuracies), its ``ci95`` half-width
    where the source gives one, the statistic it summarises and where it was printed."""

    value: float
    ci95: float | None
    source: str
    statistic: str = "mean over test tasks, one run"
    #: the upper end where the source gives a range (``value`` is the lower end)
    upper: float | None = None
    #: values after 0, 1, ... adaptation steps (RL curves); ``value`` is the last of them
    curve: tuple[float, ...] | None = None


def _seed003(table: str, rows: dict[str, tuple[float, float, float, float]], envs: tuple[str, str]) -> dict:
    """Seed 003 (Huisman 2024, ch. 3) prints, per learner, (1-shot, 5-shot) for two datasets:
    ``rows[learner] = (a1, a1_ci, a5, a5_ci, b1, b1_ci, b5, b5_ci)`` read left to right."""
    out: dict[str, dict[str, list[Reference]]] = {}
    src = f"Huisman 2024 (seed 003), Table {table}"
    stat = "median over 5 runs, 95 % CI"
    for learner, v in rows.items():
        for i, env in enumerate((f"{envs[0]}-5w1s", f"{envs[0]}-5w5s", f"{envs[1]}-5w1s", f"{envs[1]}-5w5s")):
            out.setdefault(env, {}).setdefault(learner, []).append(Reference(v[2 * i], v[2 * i + 1], src, stat))
    return out


#: Seed 003 Table 3.1: 5-way miniImageNet (1, 5 shot) and CUB (1, 5 shot).
_TABLE_3_1 = {
    "train-from-scratch": (0.29, 0.00, 0.40, 0.00, 0.30, 0.00, 0.46, 0.00),
    "baseline": (0.38, 0.00, 0.56, 0.00, 0.33, 0.01, 0.53, 0.01),
    "baseline++": (0.44, 0.00, 0.58, 0.00, 0.36, 0.01, 0.53, 0.01),
    "meta-lstm": (0.45, 0.01, 0.61, 0.00, 0.50, 0.00, 0.65, 0.01),
    "meta-lstm-plus": (0.48, 0.01, 0.63, 0.01, 0.53, 0.01, 0.71, 0.00),
    "maml-fo": (0.46, 0.01, 0.63, 0.00, 0.52, 0.00, 0.72, 0.01),
    "maml": (0.47, 0.01, 0.63, 0.00, 0.52, 0.00, 0.73, 0.01),
    "turtle-fo": (0.43, 0.01, 0.59, 0.04, 0.50, 0.00, 0.64, 0.03),
    "turtle": (0.48, 0.01, 0.62, 0.01, 0.53, 0.00, 0.72, 0.01),
}
#: Seed 003 Table 3.4: 5-way cross-domain, miniImageNet -> CUB (1, 5 shot) and CUB -> miniImageNet.
_TABLE_3_4 = {
    "train-from-scratch": (0.30, 0.00, 0.46, 0.00, 0.29, 0.00, 0.40, 0.00),
    "baseline": (0.33, 0.00, 0.52, 0.01, 0.29, 0.00, 0.41, 0.00),
    "baseline++": (0.35, 0.01, 0.52, 0.01, 0.26, 0.00, 0.31, 0.01),
    "meta-lstm": (0.34, 0.01, 0.52, 0.01, 0.29, 0.01, 0.37, 0.00),
    "meta-lstm-plus": (0.37, 0.00, 0.55, 0.01, 0.32, 0.01, 0.43, 0.01),
    "maml-fo": (0.34, 0.01, 0.54, 0.01, 0.31, 0.00, 0.45, 0.01),
    "maml": (0.35, 0.00, 0.56, 0.01, 0.31, 0.00, 0.47, 0.00),
    "turtle-fo": (0.36, 0.00, 0.54, 0.02, 0.30, 0.00, 0.31, 0.01),
    "turtle": (0.38, 0.00, 0.56, 0.01, 0.30, 0.00, 0.44, 0.00),
}


def _merge(*tables: dict[str, dict[str, list[Reference]]]) -> dict[str, dict[str, list[Reference]]]:
    out: dict[str, dict[str, list[Reference]]] = {}
    for t in tables:
        for env, by_learner in t.items():
            for learner, refs in by_learner.items():
                out.setdefault(env, {}).setdefault(learner, []).extend(refs)
    return out


#: Chen et al. 2019 (ICLR), Conv-4 with data augmentation, 5-way, mean over 600 test tasks with
#: a 95 % CI. Only the values that could be checked against a quotation of the paper are stored
#: (Baseline, miniImageNet: 1-shot 42.11 +- 0.71 quoted in WangYueFt/rfs issue #30, 5-shot "62.5%"
#: quoted for the Conv4 --train_aug command in wyharveychen/CloserLookFewShot issue #43;
#: Baseline++, miniImageNet: 48.24 and 66.43, the "Reported" column of RL-VIG/LibFewShot's
#: config/reproduce/README.md). Chen et al.'s CUB values are stored at GUIDE.md's one decimal
#: only (``_GUIDE_7``): no quotation with more digits could be checked here.
_CHEN_2019 = {
    "mini-imagenet-5w1s": {"baseline": [Reference(0.4211, 0.0071, "Chen et al. 2019, Conv-4, augmented",
                                                  "mean over 600 test tasks, 95 % CI")],
                           "baseline++": [Reference(0.4824, None, "Chen et al. 2019, Conv-4, augmented",
                                                    "mean over 600 test tasks")]},
    "mini-imagenet-5w5s": {"baseline": [Reference(0.625, None, "Chen et al. 2019, Conv-4, augmented",
                                                  "mean over 600 test tasks")],
                           "baseline++": [Reference(0.6643, None, "Chen et al. 2019, Conv-4, augmented",
                                                    "mean over 600 test tasks")]},
}


def _guide(rows: dict[str, dict[str, tuple[float, str]]]) -> dict[str, dict[str, list[Reference]]]:
    """References as ``../shared/GUIDE.md`` section 7 quotes them (one decimal, no CI)."""
    return {env: {lid: [Reference(v, None, src, "mean over test tasks")] for lid, (v, src) in by.items()}
            for env, by in rows.items()}


#: Full Omniglot (Vinyals split, 1,200 training characters x 4 rotations) and miniImageNet / CUB
#: references of GUIDE.md section 7, and seed 000's ES-ProtoNet range on Omniglot 5-way 5-shot.
_GUIDE_7 = _guide({
    "omniglot-5w1s": {"maml": (0.987, "Finn et al. 2017, Table 1"), "protonet": (0.988, "Snell et al. 2017, Table 1")},
    "omniglot-5w5s": {"maml": (0.999, "Finn et al. 2017, Table 1"), "protonet": (0.997, "Snell et al. 2017, Table 1")},
    "omniglot-20w1s": {"maml": (0.958, "Finn et al. 2017, Table 1"), "protonet": (0.960, "Snell et al. 2017, Table 1")},
    "omniglot-20w5s": {"maml": (0.989, "Finn et al. 2017, Table 1"), "protonet": (0.989, "Snell et al. 2017, Table 1")},
    "mini-imagenet-5w1s": {"meta-lstm": (0.434, "Ravi & Larochelle 2017"), "maml": (0.487, "Finn et al. 2017"),
                           "protonet": (0.494, "Snell et al. 2017")},
    "mini-imagenet-5w5s": {"meta-lstm": (0.606, "Ravi & Larochelle 2017"), "maml": (0.631, "Finn et al. 2017"),
                           "protonet": (0.682, "Snell et al. 2017")},
    "cub-5w1s": {"baseline++": (0.605, "Chen et al. 2019, Conv-4")},
    "cub-5w5s": {"baseline++": (0.793, "Chen et al. 2019, Conv-4")},
})
_SEED000 = {"omniglot-5w5s": {"es-protonet": [Reference(
    0.984, None, "seed 000, Tables I, III", "range over the configurations of the tables", upper=0.991)]}}

#: Published classification accuracies, ``env id without version -> learner id -> references``.
#: Only numbers printed in a source are stored; each carries its table.
PUBLISHED_SUPERVISED: dict[str, dict[str, list[Reference]]] = _merge(
    _seed003("3.1", _TABLE_3_1, ("mini-imagenet", "cub")),
    _seed003("3.4", _TABLE_3_4, ("mini-imagenet-to-cub", "cub-to-mini-imagenet")),
    _CHEN_2019,
    _GUIDE_7,
    _SEED000,
)


def rl_references(env_id: str, learner_id: str) -> list[Reference]:
    """``PUBLISHED_RL``'s curve for ``learner_id`` (``maml-rl`` reads ``maml``'s) on ``env_id``,
    as a ``Reference`` whose ``value`` is the return after the last published step."""
    import re

    base = re.sub(r"-v\d+$", "", env_id)
    if learner_id not in ("maml", "maml-rl"):
        return []
    by = PUBLISHED_RL.get(base, {})
    curve = by.get("maml") or by.get("maml_0_and_1")
    if not curve:
        return []
    return [Reference(curve[-1], None, "Finn et al. 2017, Fig. 5", "mean over 40 test tasks, one run",
                      curve=tuple(curve))]


#: Envs whose published numbers are on another, larger task of the same family: the
#: reference stands beside the row, marked as that task's (omniglot-lite trains on 8 of the
#: 50 alphabets; the papers on the 1,200-character Vinyals split).
REFERENCE_ENVS: dict[str, tuple[str, str]] = {
    f"omniglot-lite-{w}w{k}s": (f"omniglot-{w}w{k}s", "full Omniglot") for w in (5, 20) for k in (1, 5)
}

#: Registered learner ids whose published rows carry another name (``baseline++`` is not a
#: valid registry id; the learner is ``baseline-pp``).
LEARNER_ALIASES = {"baseline-pp": "baseline++", "finetune": "baseline"}


def references(env_id: str, learner_id: str) -> list[Reference]:
    """Published references for ``learner_id`` on ``env_id`` (a version suffix is ignored)."""
    import re

    base = re.sub(r"-v\d+$", "", env_id)
    by_learner = PUBLISHED_SUPERVISED.get(base, {})
    return list(by_learner.get(learner_id, by_learner.get(LEARNER_ALIASES.get(learner_id, ""), [])))
