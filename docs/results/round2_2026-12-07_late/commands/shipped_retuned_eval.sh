#!/usr/bin/env bash
# The shipped model with the candidate's chosen settings, on the 500 EVALUATION scenes: how much of the
# candidate's gain the settings alone give.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
.venv/bin/pmp-eval --model runs/cand_tune/shipped_t0.15_a0.2.safetensors --name shipped_s0 \
    --scenes 500 --examples 0 --no-progress --out runs/candidate_eval/shipped_retuned
.venv/bin/python -m pmp_ros.eval.ablation --a runs/candidate_eval/tuned --b runs/candidate_eval/shipped_retuned \
    --names candidate shipped_retuned --out runs/candidate_eval/tuned_vs_shipped_retuned
