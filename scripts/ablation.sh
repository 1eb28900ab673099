#!/usr/bin/env bash
# The PMP ablation of docs/results.md: PMP against its prompt-free twin (model.decoder.pmp=false), same model
# config, CLIP, data, budget and seeds, each on its own best objective: PMP on the prompted one
# (train.objective=prompted: the prompted classes are the targets), the twin on all objects
# (train.objective=all: it cannot know the prompt). STEPS per run (shorter than the shipped 12,000, the same
# for both variants), then the 500 evaluation scenes with the shipped inference settings and a paired
# bootstrap over scenes for the difference of each headline metric.
#   STEPS=1500 SEEDS="0 1 2" scripts/ablation.sh        # 2 CPU cores: 20-45 min per pair of runs (quiet to loaded) + ~10 min eval
#   CONFIG=config/train/pmp_tiny_side.yaml PMP_OBJECTIVE=all OUT=runs/ablation_side scripts/ablation.sh   # the 12-01 ablation
#   PMP_OBJECTIVE=weighted OUT=runs/ablation_weighted STEPS=1000 scripts/ablation.sh   # unnamed objects as weak targets
# Runs resume where they stopped (--resume); two runs (one thread each) train at a time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
SEEDS="${SEEDS:-0 1 2}"
STEPS="${STEPS:-1500}"
EVAL_SCENES="${EVAL_SCENES:-500}"
OUT="${OUT:-runs/ablation_prompted}"
CONFIG="${CONFIG:-config/train/pmp_prompted.yaml}"
PMP_OBJECTIVE="${PMP_OBJECTIVE:-prompted}"
CLIP="${CLIP:-models/pmp-tiny-rn-clip.safetensors}"
# The settings shipped with models/pmp_default.safetensors (chosen on the validation split).
SETTINGS=(inference.score_threshold=0.15 ensemble.alpha=0.4 ensemble.beta=0.8)
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1

train() {  # variant seed
  local pmp objective
  if [ "$1" = pmp ]; then pmp=true objective=$PMP_OBJECTIVE; else pmp=false objective=all; fi
  "$BIN/pmp-train" --config "$CONFIG" --out "$OUT/$1_s$2" --resume \
      --set "train.seed=$2" "train.steps=$STEPS" "model.decoder.pmp=$pmp" "model.clip.pretrained=$CLIP" \
      "train.objective=$objective" \
      train.threads=1 train.checkpoint_every=250 "train.snapshot_every=${SNAPSHOT_EVERY:-250}" > "$OUT/$1_s$2.log" 2>&1
  "$BIN/python" -m pmp_ros.train.ship_model "$OUT/$1_s$2/model.safetensors" "$OUT/$1_s$2.safetensors" \
      --set "${SETTINGS[@]}"
}

evaluate() {  # variant: one pmp-eval process per variant, all seeds
  local args=()
  for seed in $SEEDS; do args+=(--model "$OUT/$1_s$seed.safetensors" --name "$1_s$seed"); done
  "$BIN/pmp-eval" "${args[@]}" --scenes "$EVAL_SCENES" --examples 0 --no-progress \
      --out "$OUT/eval_$1" > "$OUT/eval_$1.log" 2>&1
}

mkdir -p "$OUT"
# Two runs at a time, in seed order; a finished run (its last.pt at STEPS) only re-ships its model, so a
# resumed ablation, or one that links the twin runs of another (same CONFIG, STEPS and seeds: the twin does
# not depend on PMP_OBJECTIVE), keeps both cores busy.
for seed in $SEEDS; do
  for variant in pmp twin; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
    train "$variant" "$seed" &
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done
evaluate pmp & evaluate twin & wait
"$BIN/python" -m pmp_ros.eval.ablation --a "$OUT/eval_pmp" --b "$OUT/eval_twin" --names pmp twin \
    --out "$OUT/ablation"
echo "ablation table: $OUT/ablation.md"
