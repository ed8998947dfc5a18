"""The registration table of metabench's task distributions.

Only ids and string entry points live here: an env's module is imported when ``make``
builds it, never at import time.
"""

from __future__ import annotations

if __name__ != "metabench.envs":  # pragma: no cover - guards `import envs` from the repo root
    raise ImportError("import this package as metabench.envs, not as a top-level 'envs'")

from metabench.registry import register

_OMNIGLOT = "metabench.envs.omniglot:Omniglot"
_SINUSOID = "metabench.envs.sinusoid:Sinusoid"


def _register_all() -> None:
    for shots in (5, 10, 20):
        register(
            f"sinusoid-{shots}s-v0",
            _SINUSOID,
            "regression",
            {"shots": shots, "queries": 10},
            description=f"sine regression, A~U[0.1,5], phase~U[0,pi], {shots}-shot (Finn et al. 2017)",
        )
    for ways in (5, 20):
        for shots in (1, 5):
            register(
                f"omniglot-{ways}w{shots}s-v0",
                _OMNIGLOT,
                "classification",
                {"ways": ways, "shots": shots, "queries": 15, "split_scheme": "vinyals"},
                description=f"Omniglot {ways}-way {shots}-shot, Vinyals split with rotations (needs the full zips)",
            )
            register(
                f"omniglot-lite-{ways}w{shots}s-v0",
                _OMNIGLOT,
                "classification",
                {"ways": ways, "shots": shots, "queries": 15, "split_scheme": "lite"},
                description=f"real Omniglot small1+small2 subset (8 alphabets), {ways}-way {shots}-shot, with rotations",
            )


_register_all()


# -- meta-RL task distributions (envs/nav2d.py, envs/point_nav.py, envs/locomotion.py) --
_NAV2D = "metabench.envs.nav2d:Nav2d"
_POINT_NAV = "metabench.envs.point_nav:PointNav"
_LOCOMOTION = "metabench.envs.locomotion:"


def _register_rl() -> None:
    for level, what in (("easy", "start varies, goal at the centre"), ("hard", "start and goal vary")):
        register(
            f"nav2d-{level}-v0",
            _NAV2D,
            "rl",
            {"difficulty": level},
            description=f"Nav2d 255x255 court, {what}; solved: return > 330 or < 38 steps (thesis 002 3.6.3.2)",
        )
    register(
        "point-nav-v0",
        _POINT_NAV,
        "rl",
        {},
        description="2-D point navigation, goal ~ U[-0.5,0.5]^2, reward -distance, horizon 100 (Finn et al. 2017)",
    )
    register(
        "halfcheetah-vel-v0",
        _LOCOMOTION + "HalfCheetahVel",
        "rl",
        {},
        description="MuJoCo HalfCheetah-v5, target velocity ~ U[0,2], horizon 200 (needs metabench[mujoco])",
    )
    register(
        "halfcheetah-dir-v0",
        _LOCOMOTION + "HalfCheetahDir",
        "rl",
        {},
        description="MuJoCo HalfCheetah-v5, direction +-1, horizon 200 (needs metabench[mujoco])",
    )
    register(
        "ant-dir-v0",
        _LOCOMOTION + "AntDir",
        "rl",
        {},
        description="MuJoCo Ant-v5, direction +-1, horizon 200 (needs metabench[mujoco])",
    )


_register_rl()


# -- miniImageNet, CUB-200-2011 and cross-domain (envs/mini_imagenet.py, envs/cub.py, envs/cross_domain.py) --
_MINI_IMAGENET = "metabench.envs.mini_imagenet:MiniImageNet"
_CUB = "metabench.envs.cub:CUB200"
_CROSS_DOMAIN = "metabench.envs.cross_domain:CrossDomain"


def _register_images() -> None:
    for shots in (1, 5):
        common = {"ways": 5, "shots": shots, "queries": 15}
        register(
            f"mini-imagenet-5w{shots}s-v0",
            _MINI_IMAGENET,
            "classification",
            common,
            description=f"miniImageNet 5-way {shots}-shot, 84x84, Ravi & Larochelle split 64/16/20 (no download)",
        )
        register(
            f"cub-5w{shots}s-v0",
            _CUB,
            "classification",
            common,
            description=f"CUB-200-2011 5-way {shots}-shot, 84x84, Chen et al. split 100/50/50 (download=True)",
        )
        register(
            f"mini-imagenet-to-cub-5w{shots}s-v0",
            _CROSS_DOMAIN,
            "classification",
            {**common, "source": "mini-imagenet", "target": "cub"},
            description=f"cross-domain 5-way {shots}-shot: train all 100 miniImageNet classes, val/test CUB (Chen et al.)",
        )
        register(
            f"cub-to-mini-imagenet-5w{shots}s-v0",
            _CROSS_DOMAIN,
            "classification",
            {**common, "source": "cub", "target": "mini-imagenet"},
            description=f"cross-domain 5-way {shots}-shot: train all 200 CUB classes, val/test miniImageNet",
        )


_register_images()
