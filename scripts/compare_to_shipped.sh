#!/usr/bin/env bash
# A candidate model (its settings chosen by scripts/choose_settings.sh) against the shipped model on the
# EVALUATION scenes: both evaluated in this run, one thread each, then the paired bootstrap over scenes
# (python -m pmp_ros.eval.ablation) of every headline metric.
# (The _s0 names: the ablation tool pairs runs by seed; each model here is one training seed.)
#   CANDIDATE=runs/q32_more_tune/t0.20_a0.2.safetensors OUT=runs/q32_more_eval scripts/compare_to_shipped.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
CANDIDATE="${CANDIDATE:?CANDIDATE: the model file with its chosen settings}"
OUT="${OUT:?OUT: a folder for the two evaluations and the table}"
SCENES="${SCENES:-500}"
SHIPPED="${SHIPPED:-models/pmp_default.safetensors}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
mkdir -p "$OUT/candidate" "$OUT/shipped"
common=(--scenes "$SCENES" --examples 0 --no-progress)
"$BIN/pmp-eval" --model "$CANDIDATE" --name candidate_s0 "${common[@]}" --out "$OUT/candidate" &
candidate_job=$!
"$BIN/pmp-eval" --model "$SHIPPED" --name shipped_s0 "${common[@]}" --out "$OUT/shipped"
wait "$candidate_job"  # its exit status: a failed evaluation stops the script
"$BIN/python" -m pmp_ros.eval.ablation --a "$OUT/candidate" --b "$OUT/shipped" \
    --names candidate shipped --out "$OUT/candidate_vs_shipped"
echo "table: $OUT/candidate_vs_shipped.md"
