# Common preamble of the device scripts (sourced, not run): environment, provenance, run().
#
# The lent GPU machine has jax/flax/optax but not this checkout's other needs, and the copy
# of the checkout that travels has no usable .git. So: jsonschema's wheels travel in
# .device/whl, the Omniglot zips in .device/data, and .device/manifest.json
# (benchmarks/tree_manifest.py write) lets the copy prove it is the committed revision
# before results name it.
#
# Defines: $OUT, $lb (a fresh leaderboard dir: results/ and runs/), run CAP_S ARGS...
# (one `metabench run`, skipped when the deadline DEADLINE_S leaves < CAP_S seconds),
# pack (results and checkpoints into $OUT/results.tgz).
set -u
start=$(date +%s)
deadline=${DEADLINE_S:-540}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
log="$OUT/log.txt"
exec > >(tee -a "$log") 2>&1

python3 -c "import jsonschema" 2>/dev/null ||
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl || exit 1
rev=$(python3 benchmarks/tree_manifest.py check .device/manifest.json) || { echo "tree differs from the manifest"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" METABENCH_GIT_REVISION=$rev METABENCH_GIT_DIRTY=0
# the tool's copy may sit in a git checkout of another commit with this tree's changes on top
# (seen: HEAD = the session's first commit, "dirty"); hide it so results take the verified revision
export GIT_DIR=/nonexistent-metabench-git
export METABENCH_DATA=$PWD/.device/data METABENCH_CACHE=/tmp/mbcache PYTHONUNBUFFERED=1
# fp32 convolutions as on CPU (XLA's GPU default would use TF32, ~1e-3 relative error)
export JAX_DEFAULT_MATMUL_PRECISION=highest
# several runs may share the GPU: allocate on demand instead of 75% up front per process
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# metabench.envs / metabench.baselines live in envs/ and baselines/ (setup.py's package_dir)
ln -sfn ../envs metabench/envs; ln -sfn ../baselines metabench/baselines
echo "revision $rev"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import jax, metabench; print('jax', jax.__version__, jax.devices())" || exit 1

lb=$(mktemp -d)  # fresh per call: a warm machine keeps /tmp, and old results must not ship again
run() {  # run CAP_S ARGS...: one metabench run, skipped when the deadline leaves < CAP_S
  local cap=$1; shift
  local left=$(( deadline - ($(date +%s) - start) ))
  if (( left < cap )); then echo "SKIP ($left s left < $cap): $*"; return; fi
  echo "=== $(( $(date +%s) - start )) s: metabench run $*"
  # SIGINT at the deadline: the harness checkpoints and exits, so a later call can --resume
  timeout -s INT "$left" python3 -m metabench.cli run --out "$lb" --no-progress "$@" || echo "EXIT $? for: $*"
  echo "=== $(( $(date +%s) - start )) s: finished $*"
}
pack() {
  echo "=== done at $(( $(date +%s) - start )) s"
  tar czf "$OUT/results.tgz" -C "$lb" . && ls -la "$OUT"
}
