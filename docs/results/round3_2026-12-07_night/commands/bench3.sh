#!/usr/bin/env bash
# Speed of the shipped 32-query model against the model shipped before it and the model of the issue's start
# (the goal's baseline), alternating, three rounds, on the quiet machine (nothing else running).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1
OUT=docs/results/round3_2026-12-07_night/bench
mkdir -p "$OUT"
for round in 1 2 3; do
  for pair in issue_start:runs/q32_tune/issue_baseline_model.safetensors \
              before:runs/q32_tune/shipped_before_q32.safetensors q32:models/pmp_default.safetensors; do
    IFS=: read -r name model <<< "$pair"
    .venv/bin/python bench/bench_model.py --model "$model" --sizes 320x240 --iterations 60 \
        --json "$OUT/final_${name}_r$round.json"
  done
done
