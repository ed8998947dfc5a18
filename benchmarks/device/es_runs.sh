#!/usr/bin/env bash
# ES-ProtoNet runs on a lent GPU machine (issue 6), one call of the `device` tool.
#
# The machine has jax/flax/optax but not this checkout's other needs, and the copy of the
# checkout that travels has no .git. So: jsonschema's wheels travel in .device/whl, the
# Omniglot zips in .device/data, and .device/manifest.json (benchmarks/tree_manifest.py
# write) lets the copy prove it is the committed revision before results name it.
#
#   run(command="bash benchmarks/device/es_runs.sh", carry=[".device"], timeout_s=590)
#
# Every run is a plain `metabench run`; results are packed into $OUT/results.tgz. A
# deadline (DEADLINE_S, default 540 s) stops starting new runs so the packing happens.
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
# fp32 convolutions as on CPU (XLA's GPU default would use TF32, ~1e-3 relative error,
# comparable to the fitness differences ES estimates its gradient from)
export JAX_DEFAULT_MATMUL_PRECISION=highest
# metabench.envs / metabench.baselines live in envs/ and baselines/ (setup.py's package_dir)
ln -sfn ../envs metabench/envs; ln -sfn ../baselines metabench/baselines
echo "revision $rev"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import jax, metabench; print('jax', jax.__version__, jax.devices())" || exit 1

lb=$(mktemp -d)  # fresh per call: a warm machine keeps /tmp, and old results must not ship again
es="--set antithetic=true --set es_optimizer=adam --set alpha=0.003 --set sigma=0.01 --set channels=16"
run() {  # run CAP_S ARGS...: one metabench run, skipped when the deadline leaves < CAP_S
  local cap=$1; shift
  local left=$(( deadline - ($(date +%s) - start) ))
  if (( left < cap )); then echo "SKIP ($left s left < $cap): $*"; return; fi
  echo "=== $(( $(date +%s) - start )) s: metabench run $*"
  timeout "$left" python3 -m metabench.cli run --out "$lb" --no-progress "$@" || echo "EXIT $? for: $*"
}
for job in ${JOBS:-es5 pn5 sweep es1 pn1 es20}; do
  case $job in
    es5) run 60 --env omniglot-lite-5w5s --learner es-protonet --steps 2000 $es --set population=512 --set candidate_batch=0 ;;
    pn5) run 40 --env omniglot-lite-5w5s --learner protonet --steps 2000 --set channels=16 ;;
    es1) run 60 --env omniglot-lite-5w1s --learner es-protonet --steps 2000 $es --set population=512 --set candidate_batch=0 ;;
    pn1) run 40 --env omniglot-lite-5w1s --learner protonet --steps 2000 --set channels=16 ;;
    es20) run 60 --env omniglot-lite-5w5s --learner es-protonet --steps 2000 --train-env-set ways=20 $es --set population=512 --set candidate_batch=0 ;;
    pn20) run 40 --env omniglot-lite-5w5s --learner protonet --steps 2000 --train-env-set ways=20 --set channels=16 ;;
    sweep2)  # past Table II's largest setting, looking for the collapse
      for as in "50 0.5" "100 1"; do
        set -- $as
        run 30 --env omniglot-lite-5w5s --learner es-protonet --steps 300 --train-env-set ways=10 \
          --set alpha=$1 --set sigma=$2 --set population=1024 --set channels=16 --set candidate_batch=0
      done ;;
    sweep)  # seed 000 Table II: SGD WSR, total population 1024, 16 channels, train way 10
      for as in "0.1 0.001" "1 0.01" "10 0.1" "25 0.25"; do
        set -- $as
        run 30 --env omniglot-lite-5w5s --learner es-protonet --steps 300 --train-env-set ways=10 \
          --set alpha=$1 --set sigma=$2 --set population=1024 --set channels=16 --set candidate_batch=0
      done ;;
  esac
done
echo "=== done at $(( $(date +%s) - start )) s"
tar czf "$OUT/results.tgz" -C "$lb" results && ls -la "$OUT"
