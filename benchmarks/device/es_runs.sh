#!/usr/bin/env bash
# ES-ProtoNet runs on a lent GPU machine (issue 6), one call of the `device` tool.
#
# Environment and provenance: setup.sh.
#
#   run(command="bash benchmarks/device/es_runs.sh", carry=[".device"], timeout_s=590)
#
# Every run is a plain `metabench run`; results are packed into $OUT/results.tgz. A
# deadline (DEADLINE_S, default 540 s) stops starting new runs so the packing happens.
source "$(dirname "$0")/setup.sh"
es="--set antithetic=true --set es_optimizer=adam --set alpha=0.003 --set sigma=0.01 --set channels=16"
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
pack
