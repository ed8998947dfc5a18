"""Package discovery for the three source folders (metadata lives in pyproject.toml).

``envs/`` and ``baselines/`` ship as ``metabench.envs`` and ``metabench.baselines``;
every subpackage under the three folders is found, so a new one cannot be left out.
"""

from setuptools import find_packages, setup

PACKAGE_DIR = {"metabench": "metabench", "metabench.envs": "envs", "metabench.baselines": "baselines"}


def _packages() -> list[str]:
    out = []
    for dotted, folder in PACKAGE_DIR.items():
        out.append(dotted)
        out += [f"{dotted}.{sub}" for sub in find_packages(folder)]
    return sorted(set(out))


setup(package_dir=PACKAGE_DIR, packages=_packages())
