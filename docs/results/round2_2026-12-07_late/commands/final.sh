#!/usr/bin/env bash
# 1. Would the shipped model gain as much from the candidate's new settings? (500 VALIDATION scenes)
# 2. The candidate with its chosen settings (threshold 0.20, alpha 0.2, beta 0.8) on the 500 EVALUATION scenes.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
for t in 0.15 0.20; do
  .venv/bin/python -m pmp_ros.train.ship_model models/pmp_default.safetensors runs/cand_tune/shipped_t${t}_a0.2.safetensors \
      --set inference.score_threshold=$t ensemble.alpha=0.2 ensemble.beta=0.8
done
.venv/bin/pmp-eval --model runs/cand_tune/shipped_t0.15_a0.2.safetensors --name shipped_t0.15_a0.2 \
    --model runs/cand_tune/shipped_t0.20_a0.2.safetensors --name shipped_t0.20_a0.2 \
    --split validation --scenes 500 --examples 0 --no-progress --out runs/cand_tune/eval500_shipped_retuned
.venv/bin/pmp-eval --model runs/cand_tune/t0.20_fcclip_a0.2_b0.8.safetensors --name candidate_tuned \
    --scenes 500 --examples 0 --no-progress --out runs/candidate_eval/candidate_tuned
# pmp_ros.eval.ablation pairs models by an _s<seed> name suffix: the records under that name
mkdir -p runs/candidate_eval/tuned
cp runs/candidate_eval/candidate_tuned/records-candidate_tuned.json runs/candidate_eval/tuned/records-candidate_s0.json
.venv/bin/python -m pmp_ros.eval.ablation --a runs/candidate_eval/tuned --b runs/candidate_eval/shipped \
    --names candidate shipped --out runs/candidate_eval/tuned_vs_shipped
