#!/usr/bin/env bash
# Regenerate the canonical set of the leaderboard (issue 27 item 4): every table learner on every
# env of metabench.leaderboard.plan.PLAN_ENVS, seeds 0 1 2, each with its canonical settings
# (`metabench run` with no options; MuJoCo with its labelled reduced budget). Runs that already
# have a result file are skipped; an interrupted run resumes from its checkpoint (a tenth of its
# steps apart). Refuses a dirty checkout (canonical runs come from a clean tree).
#
#   benchmarks/reproduce/canonical.sh                 # list the runs, present or missing, with commands
#   benchmarks/reproduce/canonical.sh --run           # run the missing ones, one after another
#   benchmarks/reproduce/canonical.sh --run --env point-nav --learner maml-rl --seed 0
#
# Then: metabench leaderboard
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python -m metabench.cli canonical --out leaderboard "$@"
