#!/usr/bin/env bash
# Recipe for the peer environment of benchmarks/peer/bench_peer.py (issue 31): torch on CPU and
# learn2learn 0.2.0 in their own virtual environment, never in metabench's.
#
#   bash benchmarks/peer/setup_venv.sh [VENV_DIR]      # default /work/peer_venv (not committed)
#
# Steps:
#  1. a fresh venv with the same Python 3.11 as metabench's;
#  2. torch==2.13.0, pinned so pip takes the CPU build (on this machine a local file found
#     through pip's find-links; elsewhere add --index-url https://download.pytorch.org/whl/cpu);
#  3. learn2learn's runtime pieces the benchmark touches: numpy, scipy, requests, tqdm.
#     torchvision, gym, gsutil and qpth are left out (torchvision from PyPI fails to import
#     beside this torch; the benchmark imports only learn2learn's models, algorithms and
#     utils, and builds its Omniglot tasks from metabench's own arrays);
#  4. learn2learn 0.2.0 from its sdist: its shipped Cython .c files fail to compile on
#     Python 3.11, so they are regenerated with Cython < 3 before installing with --no-deps.
set -euo pipefail
VENV="${1:-/work/peer_venv}"
PY="${PYTHON:-python3.11}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q 'torch==2.13.0'
"$PIP" install -q numpy scipy requests tqdm 'cython<3' setuptools wheel
"$PIP" download -q 'learn2learn==0.2.0' --no-deps --no-binary :all: -d "$WORK"
tar xzf "$WORK"/learn2learn-0.2.0.tar.gz -C "$WORK"
SRC="$WORK/learn2learn-0.2.0"
rm -rf "$SRC/.eggs"
for f in meta_dataset task_dataset transforms; do
  "$VENV/bin/cython" -X language_level=3 -X embedsignature=True "$SRC/learn2learn/data/$f.pyx"
done
(cd "$SRC" && "$PIP" install -q --no-deps --no-build-isolation .)
"$VENV/bin/python" - <<'PY'
import torch
from importlib.metadata import version
print(f"torch {torch.__version__} (cuda build: {torch.version.cuda}), learn2learn {version('learn2learn')}")
PY
echo "peer venv ready: $VENV"
