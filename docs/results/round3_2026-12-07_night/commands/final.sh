#!/usr/bin/env bash
# The 32-query model with its chosen settings (CHOSEN: a name of sweep500.sh) against the shipped model on
# the 500 EVALUATION scenes, paired over scenes; both evaluated in this run, one thread each.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
mkdir -p runs/q32_eval/q32 runs/q32_eval/shipped
.venv/bin/pmp-eval --model runs/q32_tune/$CHOSEN.safetensors --name q32_s0 \
    --scenes 500 --examples 0 --no-progress --out runs/q32_eval/q32 &
.venv/bin/pmp-eval --model models/pmp_default.safetensors --name shipped_s0 \
    --scenes 500 --examples 0 --no-progress --out runs/q32_eval/shipped
wait
.venv/bin/python -m pmp_ros.eval.ablation --a runs/q32_eval/q32 --b runs/q32_eval/shipped \
    --names q32 shipped --out runs/q32_eval/q32_vs_shipped
