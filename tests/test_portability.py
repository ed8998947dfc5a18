"""No POSIX-only import or call on the CLI's path: the CLI and a run work without them (Windows-like)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = r"""
import os, sys
for name in ("resource", "fcntl", "pwd", "grp", "termios"):
    sys.modules[name] = None  # `import name` raises ImportError, as on Windows
del os.fchmod  # Windows has it only from Python 3.13
import metabench.cli
from metabench.atomic import atomic_write_text
from metabench.harness.provenance import peak_rss_bytes
out = sys.argv[1]
assert metabench.cli.main(["list", "learners", "maml"]) == 0
rc = metabench.cli.main(["run", "--env", "sinusoid-5s", "--learner", "maml", "--steps", "1", "--val-every", "0",
                         "--set", "eval_steps=1", "--out", out, "--log-dir", out + "/logs", "--no-progress"])
assert rc == 0, rc
mask = os.umask(0o022); os.umask(mask)
p = atomic_write_text(out + "/x.txt", "hi")
assert p.stat().st_mode & 0o777 == 0o666 & ~mask, oct(p.stat().st_mode)  # chmod fallback: not mkstemp's 0o600
print("rss", peak_rss_bytes())
"""


def test_cli_and_a_run_work_without_posix_only_modules(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "rss 0"  # no resource, not Windows: the documented fallback
    assert list((tmp_path / "results").glob("*.json")) and list((tmp_path / "logs").glob("*/metrics.jsonl"))
