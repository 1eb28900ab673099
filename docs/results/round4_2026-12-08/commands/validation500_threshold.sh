#!/usr/bin/env bash
# The chosen candidate of validation500.sh (more_tower_t0.20_a0.3) at thresholds 0.15 and 0.25, on the same
# 500 VALIDATION scenes (copies: ship_model runs/r4_tune/more_tower_t0.20_a0.3.safetensors --set
# inference.score_threshold=0.15 / 0.25); same rule.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
D=runs/r4_tune
common=(--split validation --scenes 500 --examples 0 --no-progress)
.venv/bin/pmp-eval --model $D/more_tower_t0.15_a0.3.safetensors --name more_tower_t0.15_a0.3 "${common[@]}" --out $D/eval500_c &
first_job=$!
.venv/bin/pmp-eval --model $D/more_tower_t0.25_a0.3.safetensors --name more_tower_t0.25_a0.3 "${common[@]}" --out $D/eval500_d
wait "$first_job"
