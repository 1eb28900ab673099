#!/usr/bin/env bash
# The candidate's threshold and ensemble on 500 VALIDATION scenes (100 were too few to separate them).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
args=()
for setting in 0.15:fcclip:0.4:0.8 0.20:fcclip:0.4:0.8 0.25:fcclip:0.4:0.8 \
               0.20:fcclip:0.3:0.8 0.20:fcclip:0.5:0.8 0.20:fcclip:0.4:0.7 0.20:fcclip:0.4:0.9 0.20:split:0.4:1.0; do
  IFS=: read -r t rule alpha beta <<< "$setting"
  name="t${t}_${rule}_a${alpha}_b${beta}"
  .venv/bin/python -m pmp_ros.train.ship_model runs/candidate_weighted_12k.safetensors runs/cand_tune/$name.safetensors \
      --set inference.score_threshold=$t ensemble.unseen_rule=$rule ensemble.alpha=$alpha ensemble.beta=$beta 2>/dev/null
  args+=(--model runs/cand_tune/$name.safetensors --name $name)
done
args+=(--model models/pmp_default.safetensors --name shipped)
.venv/bin/pmp-eval "${args[@]}" --split validation --scenes 500 --examples 0 --no-progress --out runs/cand_tune/eval500
