#!/usr/bin/env bash
# Per-frame speed of several models at 320x240 (bench/bench_model.py), alternating them for ROUNDS rounds so
# that the machine's drift falls on all alike; one JSON per model and round in OUT. Quote the medians of the
# per-round ratios, and run it only on a quiet machine (no training or evaluation beside it).
#   MODELS="start:runs/x/issue_start.safetensors new:models/pmp_default.safetensors" OUT=docs/results/.../bench \
#       scripts/bench_models.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
MODELS="${MODELS:?MODELS: name:path pairs}"
OUT="${OUT:?OUT: a folder for the JSON results}"
ROUNDS="${ROUNDS:-3}"
ITERATIONS="${ITERATIONS:-60}"
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for pair in $MODELS; do
    IFS=: read -r name model <<< "$pair"
    "$BIN/python" bench/bench_model.py --model "$model" --sizes 320x240 --iterations "$ITERATIONS" \
        --json "$OUT/${name}_r$round.json"
  done
done
