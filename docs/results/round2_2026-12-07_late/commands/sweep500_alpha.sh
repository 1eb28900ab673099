#!/usr/bin/env bash
# Second round: lower alphas (0.3 led the first round, runs/cand_tune/sweep500.sh).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
args=()
for setting in 0.20:fcclip:0.0:0.8 0.20:fcclip:0.1:0.8 0.20:fcclip:0.2:0.8 0.20:fcclip:0.2:0.7 0.25:fcclip:0.2:0.8 0.15:fcclip:0.2:0.8; do
  IFS=: read -r t rule alpha beta <<< "$setting"
  name="t${t}_${rule}_a${alpha}_b${beta}"
  .venv/bin/python -m pmp_ros.train.ship_model runs/candidate_weighted_12k.safetensors runs/cand_tune/$name.safetensors \
      --set inference.score_threshold=$t ensemble.unseen_rule=$rule ensemble.alpha=$alpha ensemble.beta=$beta 2>/dev/null
  args+=(--model runs/cand_tune/$name.safetensors --name $name)
done
.venv/bin/pmp-eval "${args[@]}" --split validation --scenes 500 --examples 0 --no-progress --out runs/cand_tune/eval500_alpha
