"""Type-check metabench as it installs: ``metabench``, ``metabench.envs``, ``metabench.baselines``.

``envs/`` and ``baselines/`` ship as ``metabench.envs`` / ``metabench.baselines``
(``setup.py``'s package-dir mapping); a type checker follows neither that mapping nor
setuptools' editable import hook. This script copies the three folders into one package
tree in a temporary directory, runs mypy there (settings: ``[tool.mypy]`` in
``pyproject.toml``) and prints the errors with the repository's own paths.

    python tools/typecheck.py            # exit status: mypy's
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: repository folder -> where it lies in the installed package
LAYOUT = {"metabench": "metabench", "envs": "metabench/envs", "baselines": "metabench/baselines"}


def stage(dest: Path) -> None:
    """Copy the Python sources (and py.typed) into ``dest`` in the installed layout."""
    for src, target in LAYOUT.items():
        for path in (ROOT / src).rglob("*"):
            if path.suffix in (".py", ".pyi") or path.name == "py.typed":
                out = dest / target / path.relative_to(ROOT / src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="metabench-typecheck-") as tmp:
        stage(Path(tmp))
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *argv, "-p", "metabench"]
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        text = out.stdout + out.stderr
        for src, target in sorted(LAYOUT.items(), key=lambda kv: -len(kv[1])):
            text = text.replace(target + "/", src + "/") if src != target else text
        print(text, end="")
        return out.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
