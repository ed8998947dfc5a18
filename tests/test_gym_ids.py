"""metabench ids in gymnasium's registry (metabench/gym_ids.py): lazy, complete, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

gymnasium = pytest.importorskip("gymnasium", reason="needs the rl extra (pip install 'metabench[rl]')")

import metabench  # noqa: E402
from metabench.gym_ids import gym_id  # noqa: E402

RL_IDS = sorted(k for k, s in metabench.registry.items() if s.kind == "rl")
SUPERVISED_IDS = sorted(k for k, s in metabench.registry.items() if s.kind != "rl")


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def test_every_id_is_in_gymnasiums_registry_under_the_metabench_namespace() -> None:
    assert RL_IDS and "point-nav-v0" in RL_IDS
    for key in RL_IDS + SUPERVISED_IDS:
        assert f"metabench/{key}" in gymnasium.registry, key
    spec = gymnasium.spec("metabench/point-nav-v0")
    assert spec.namespace == "metabench" and spec.name == "point-nav" and spec.version == 0
    assert spec.kwargs == {"env_id": "point-nav-v0"} and spec.vector_entry_point is not None


@pytest.mark.parametrize("first", ["metabench", "gymnasium"])
def test_registration_is_lazy_and_works_in_either_import_order(first: str) -> None:
    second = "gymnasium" if first == "metabench" else "metabench"
    lines = _run(
        f"import sys\nimport {first}\n"
        "print(sorted(m for m in ('gymnasium', 'mujoco', 'metabench.envs.locomotion', 'metabench.envs.point_nav',"
        " 'metabench.gym_env') if m in sys.modules))\n"
        f"import {second}\nimport gymnasium\n"
        "print('metabench/point-nav-v0' in gymnasium.registry, 'metabench/ant-dir-v0' in gymnasium.registry)\n"
        "print(sorted(m for m in ('mujoco', 'metabench.envs.locomotion', 'metabench.gym_env') if m in sys.modules))\n"
    )
    assert lines[0] == ("[]" if first == "metabench" else "['gymnasium']")
    assert lines[1] == "True True"
    assert lines[2] == "[]"  # registering imports no env module, no MuJoCo


def test_import_metabench_does_not_import_mujoco_per_importtime() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import metabench"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    modules = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert "metabench" in modules
    assert not [m for m in modules if m.split(".")[0] in ("mujoco", "gymnasium")]


@pytest.mark.parametrize("key", ["sinusoid-5s-v0", "omniglot-lite-5w1s-v0"])
def test_a_supervised_id_is_a_clear_error(key: str) -> None:
    with pytest.raises(metabench.ConfigError, match=r"supervised.*not an RL env.*metabench/point-nav-v0") as e:
        gymnasium.make(f"metabench/{key}")
    assert f"metabench.make('{key}')" in str(e.value)
    with pytest.raises(metabench.ConfigError, match="not an RL env"):
        gymnasium.make_vec(f"metabench/{key}", num_envs=2)


def test_an_id_registered_later_is_mirrored() -> None:
    spec = metabench.register("test-gym-point-v3", "metabench.envs.point_nav:PointNav", "rl", {"max_steps": 5})
    try:
        assert gym_id(spec) in gymnasium.registry
        env = gymnasium.make("metabench/test-gym-point-v3")
        env.reset(seed=0)
        steps = 0
        while True:
            steps += 1
            if any(env.step(env.action_space.sample() * 0)[2:4]):
                break
        assert steps == 5
    finally:
        metabench.registry.remove("test-gym-point-v3")
        gymnasium.registry.pop("metabench/test-gym-point-v3", None)
