#!/usr/bin/env bash
# The candidate's score threshold on 100 VALIDATION scenes (shipped ensemble fcclip 0.4/0.8 kept).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
args=()
for t in 0.10 0.15 0.20 0.25 0.30; do
  .venv/bin/python -m pmp_ros.train.ship_model runs/candidate_weighted_12k.safetensors runs/cand_tune/t$t.safetensors \
      --set inference.score_threshold=$t
  args+=(--model runs/cand_tune/t$t.safetensors --name cand_t$t)
done
args+=(--model models/pmp_default.safetensors --name shipped)
.venv/bin/pmp-eval "${args[@]}" --split validation --scenes 100 --examples 0 --no-progress --out runs/cand_tune/eval_thr
