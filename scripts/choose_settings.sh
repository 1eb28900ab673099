#!/usr/bin/env bash
# Chooses a trained run's score threshold and ensemble alpha on VALIDATION scenes (never the evaluation
# set), beside the shipped model: a shipped copy of RUN per setting (python -m pmp_ros.train.ship_model:
# same weights, other inference settings), all evaluated by pmp-eval in two processes of one thread each
# (the machine's two cores). The choice is read from the two reports ($OUT/eval_a, $OUT/eval_b) by the rule
# of docs/results.md: the highest instruction F1 among the settings whose whole-vocabulary hmean is not
# below the shipped model's. Then scripts/compare_to_shipped.sh with the chosen copy.
#   RUN=runs/q32_more/model.safetensors OUT=runs/q32_more_tune scripts/choose_settings.sh
#   SETTINGS="0.20:0.2 0.25:0.2" SCENES=100 RUN=... OUT=... scripts/choose_settings.sh   # threshold:alpha
#   SHIPPED=none RUN=... OUT=... scripts/choose_settings.sh   # a second candidate, the shipped model evaluated already
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
RUN="${RUN:?RUN: model.safetensors of the trained run}"
OUT="${OUT:?OUT: a folder for the copies and the reports}"
SCENES="${SCENES:-500}"
BETA="${BETA:-0.8}"
SHIPPED="${SHIPPED:-models/pmp_default.safetensors}"
SETTINGS="${SETTINGS:-0.20:0.2 0.15:0.2 0.25:0.2 0.20:0.1 0.20:0.3}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
mkdir -p "$OUT"
first=(); second=()
i=0
for setting in $SETTINGS; do
  IFS=: read -r threshold alpha <<< "$setting"
  name="t${threshold}_a${alpha}"
  "$BIN/python" -m pmp_ros.train.ship_model "$RUN" "$OUT/$name.safetensors" \
      --set "inference.score_threshold=$threshold" "ensemble.alpha=$alpha" "ensemble.beta=$BETA"
  if (( i % 2 == 0 )); then first+=(--model "$OUT/$name.safetensors" --name "$name")
  else second+=(--model "$OUT/$name.safetensors" --name "$name"); fi
  i=$((i + 1))
done
if [[ "$SHIPPED" != none ]]; then second+=(--model "$SHIPPED" --name shipped); fi
common=(--split validation --scenes "$SCENES" --examples 0 --no-progress)
"$BIN/pmp-eval" "${first[@]}" "${common[@]}" --out "$OUT/eval_a" &
first_job=$!
if (( ${#second[@]} )); then "$BIN/pmp-eval" "${second[@]}" "${common[@]}" --out "$OUT/eval_b"; fi
wait "$first_job"  # its exit status: a failed evaluation stops the script
echo "reports: $OUT/eval_a/report.md $OUT/eval_b/report.md"
