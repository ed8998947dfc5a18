"""`import metabench` stays light, and the wheel carries every subpackage."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = r"""
import os, sys
touched = []
data = os.environ["METABENCH_DATA"]
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        if os.fspath(args[0]).startswith(data):
            touched.append(os.fspath(args[0]))
    if event in ("os.listdir", "os.scandir") and args and args[0] and os.fspath(args[0]).startswith(data):
        touched.append(os.fspath(args[0]))
sys.addaudithook(hook)
import metabench
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("mujoco", "gymnasium", "evosax", "matplotlib", "PIL", "torch"))
print(repr((heavy, touched)))
"""


def test_import_is_light_and_touches_no_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "omniglot").mkdir(parents=True)
    env = {**os.environ, "METABENCH_DATA": str(data)}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True)
    heavy, touched = eval(out.stdout.strip().splitlines()[-1])
    assert heavy == [], f"import metabench imported heavy modules: {heavy}"
    assert touched == [], f"import metabench touched data files: {touched}"


def test_wheel_contains_every_subpackage(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(tmp_path.glob("metabench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected_packages = set()
    for top, dotted in (("metabench", "metabench"), ("envs", "metabench/envs"), ("baselines", "metabench/baselines")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            expected_packages.add(f"{dotted}/{rel.as_posix()}/__init__.py".replace("/./", "/"))
    missing = sorted(p for p in expected_packages if p not in names)
    assert not missing, f"wheel lacks packages: {missing}"
    for top, dotted in (("metabench", "metabench"), ("envs", "metabench/envs"), ("baselines", "metabench/baselines")):
        for src in (ROOT / top).rglob("*.py"):
            arc = f"{dotted}/{src.relative_to(ROOT / top).as_posix()}"
            assert arc in names, f"wheel lacks module {arc}"
    assert not any(n.startswith(("envs/", "baselines/", "tests/")) for n in names), "top-level folders leaked into the wheel"
