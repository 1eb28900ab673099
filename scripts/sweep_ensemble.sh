#!/usr/bin/env bash
# Chooses a model's ensemble settings on the VALIDATION split (never the evaluation set): shipped copies of
# MODEL with each setting (python -m pmp_ros.train.ship_model: same weights, other inference settings),
# evaluated together by pmp-eval on SCENES validation scenes. The report's table (OUT/eval/report.md)
# is what the choice is read from.
#   MODEL=models/pmp_default.safetensors OUT=runs/sweep_ensemble scripts/sweep_ensemble.sh
#   SETTINGS="fcclip:0.4:0.8 split:0.4:1.0" scripts/sweep_ensemble.sh      # rule:alpha:beta per copy
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
MODEL="${MODEL:-models/pmp_default.safetensors}"
OUT="${OUT:-runs/sweep_ensemble}"
SCENES="${SCENES:-100}"
SETTINGS="${SETTINGS:-fcclip:0.4:0.8 split:0.4:0.7 split:0.4:0.85 split:0.4:1.0 split:0.6:1.0}"
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
args=()
for setting in $SETTINGS; do
  IFS=: read -r rule alpha beta <<< "$setting"
  name="${rule}_a${alpha}_b${beta}"
  "$BIN/python" -m pmp_ros.train.ship_model "$MODEL" "$OUT/$name.safetensors" \
      --set "ensemble.unseen_rule=$rule" "ensemble.alpha=$alpha" "ensemble.beta=$beta"
  args+=(--model "$OUT/$name.safetensors" --name "$name")
done
"$BIN/pmp-eval" "${args[@]}" --split validation --scenes "$SCENES" --examples 0 --no-progress --out "$OUT/eval"
echo "table: $OUT/eval/report.md"
