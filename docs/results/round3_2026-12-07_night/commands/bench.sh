#!/usr/bin/env bash
# Speed of the candidate (32 queries) against the shipped model (16), alternating, three rounds each, on the
# quiet machine (the training run paused with SIGSTOP, nothing else running). CANDIDATE: a 32-query checkpoint
# with the shipped settings (speed depends on the architecture, not on how far it was trained).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1
OUT=docs/results/round3_2026-12-07_night/bench
mkdir -p "$OUT"
for round in 1 2 3; do
  .venv/bin/python bench/bench_model.py --model models/pmp_default.safetensors --sizes 320x240 --iterations 60 \
      --json "$OUT/shipped_r$round.json"
  .venv/bin/python bench/bench_model.py --model "$CANDIDATE" --sizes 320x240 --iterations 60 \
      --json "$OUT/q32_r$round.json"
done
