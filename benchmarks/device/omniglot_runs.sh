#!/usr/bin/env bash
# Issue 3's Omniglot accuracy runs (ProtoNet, MAML) on a lent GPU machine, one call of the
# `device` tool; the runs of a call share the GPU and run at the same time.
#
#   run(command="bash benchmarks/device/omniglot_runs.sh", carry=[".device"], timeout_s=590)
#
# JOBS selects jobs (default: all below). Every run is a plain `metabench run` that
# checkpoints every 500 steps; at the deadline (DEADLINE_S, default 540 s) unfinished runs
# get SIGINT, checkpoint and stop. results.tgz holds results/ and runs/ (checkpoints):
# unpack it into .device/resume/ and call again with RESUME=1 to finish those runs (the
# harness's resume gives the same result as an uninterrupted run).
#
# ProtoNet follows Snell et al. 2017 section 3.1: 64-channel Conv-4, trained 60-way with
# 5 queries per class, Adam 1e-3 halved every 2000 episodes (here every 4000 of 20000).
# MAML follows Finn et al. 2017 (defaults resolved per env, see baselines/maml.py); on the
# GPU tasks are vmapped (grouped convolutions are fast there, slow on XLA CPU).
source "$(dirname "$0")/setup.sh"
resume=()
if [[ ${RESUME:-0} == 1 ]]; then
  cp -r .device/resume/. "$lb"/ && resume=(--resume) && echo "resuming from $(ls "$lb"/runs | wc -l) checkpoints"
fi
common=(--checkpoint-every 500 --val-every 500 "${resume[@]}")
pn=(--learner protonet --steps 20000 --train-env-set ways=60 --train-env-set queries=5 --set lr_halve_every=4000)
maml=(--set task_map=vmap)
pids=()
for job in ${JOBS:-pn1 pn5 pn20 maml1 maml5 maml20}; do
  case $job in
    pn1) run 60 --env omniglot-lite-5w1s "${pn[@]}" "${common[@]}" & ;;
    pn5) run 60 --env omniglot-lite-5w5s "${pn[@]}" "${common[@]}" & ;;
    pn20) run 60 --env omniglot-lite-20w1s "${pn[@]}" "${common[@]}" & ;;
    maml1) run 60 --env omniglot-lite-5w1s --learner maml --steps 6000 "${maml[@]}" "${common[@]}" & ;;
    maml5) run 60 --env omniglot-lite-5w5s --learner maml --steps 4000 "${maml[@]}" "${common[@]}" & ;;
    maml20) run 60 --env omniglot-lite-20w1s --learner maml --steps 6000 "${maml[@]}" "${common[@]}" & ;;
    *) echo "unknown job $job"; continue ;;
  esac
  pids+=($!)
  sleep 2
done
# wait for the runs only: a bare `wait` also waits for setup.sh's `tee` process substitution,
# which never ends (the first call on 2026-11-30 hung there until the tool's timeout, and its
# results had to be packed by a second call on the still-warm machine)
(( ${#pids[@]} )) && wait "${pids[@]}"
pack
