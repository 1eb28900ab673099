#!/usr/bin/env bash
# Reproduces the shipped weights (docs/results.md "The crop tower shipped", models/*.md) from nothing:
#   1. CLIP pretraining of pmp-tiny-rn on procedural-world crops of all 100 classes (6000 steps);
#   2. PMP with the side adapter and crop classification on the `weighted` objective
#      (config/train/pmp_prompted.yaml with 32 queries, crops for the 16 most object-like, 12,000 steps),
#      on seen classes only; with ABLATION=1 also its
#      prompt-free twin on its own best objective (`all`), same data, budget and seeds (SEEDS);
#   3. the PMP model of the first seed trained 8,000 steps more (scripts/train_prompted.sh, lr 2e-4, new
#      scenes), and the crop tower: the image tower alone trained on zoomed crops against the step-1 text
#      tower (6000 steps);
#   4. evaluation on the fixed evaluation set (EVAL_SCENES scenes, seeds never trained on);
#   5. that model with the crop tower and the settings chosen on the validation split becomes
#      models/pmp_default.safetensors.
# On 2 CPU cores, one thread per run: about CLIP 1.5 h + 1.7 h per PMP run + 1.3 h more + crop tower 1 h +
# 5 min per evaluation. Every run resumes where it stopped (--resume).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
SEEDS="${SEEDS:-0}"
ABLATION="${ABLATION:-0}"
EVAL_SCENES="${EVAL_SCENES:-500}"
RUNS="${RUNS:-runs}"
export HF_HUB_OFFLINE=1

CLIP="$RUNS/clip/clip.safetensors"
if [ ! -f "$CLIP" ]; then
  resume=$([ -f "$RUNS/clip/clip.state.pt" ] && echo --resume || true)
  "$BIN/pmp-train-clip" --steps 6000 --lr 0.002 --small-prob 0.15 --threads 1 --checkpoint-every 250 \
      --eval-scenes 300 --out "$CLIP" $resume
fi
variants=(pmp)
[ "$ABLATION" = 1 ] && variants+=(twin)
models=() names=()
for seed in $SEEDS; do
  for variant in "${variants[@]}"; do
    pmp=$([ "$variant" = pmp ] && echo true || echo false)
    objective=$([ "$variant" = pmp ] && echo weighted || echo all)
    out="$RUNS/${variant}_${objective}_s$seed"
    "$BIN/pmp-train" --config config/train/pmp_prompted.yaml --out "$out" --resume \
        --set "train.seed=$seed" "model.decoder.pmp=$pmp" "train.objective=$objective" \
        "model.clip.pretrained=$CLIP" train.steps=12000 train.threads=1 \
        model.decoder.num_queries=32 model.ensemble.max_crops=16
    models+=(--model "$out/model.safetensors") names+=(--name "${variant}_s$seed")
  done
done
first=$(echo $SEEDS | cut -d' ' -f1)
MORE="$RUNS/pmp_weighted_s${first}_more"
OBJECTIVE=weighted STEPS=8000 THREADS=1 SNAPSHOT=1000 INIT="$RUNS/pmp_weighted_s$first/model.safetensors" \
    CLIP="$CLIP" OUT="$MORE" SET="train.seed=$((first + 1))" scripts/train_prompted.sh
TOWER="$RUNS/crop_tower/clip.safetensors"
if [ ! -f "$TOWER" ]; then
  resume=$([ -f "$RUNS/crop_tower/clip.state.pt" ] && echo --resume || true)
  "$BIN/pmp-train-clip" --init "$CLIP" --crop-tower 1 --zoom 1.5 --zoom-min-side 16 --seed 2 --lr 0.001 \
      --steps 6000 --small-prob 0.3 --threads 1 --checkpoint-every 250 --eval-scenes 300 --out "$TOWER" $resume
fi
models+=(--model "$MORE/model.safetensors") names+=(--name "pmp_more_s$first")
"$BIN/pmp-eval" "${models[@]}" "${names[@]}" --scenes "$EVAL_SCENES" --out "$RUNS/evaluation"
# The settings chosen on the validation split (docs/results.md "The crop tower shipped").
"$BIN/python" -m pmp_ros.train.ship_model "$MORE/model.safetensors" models/pmp_default.safetensors \
    --crop-tower "$TOWER" --set inference.score_threshold=0.20 ensemble.alpha=0.3 ensemble.beta=0.8
cp "$CLIP" models/pmp-tiny-rn-clip.safetensors
cp "${CLIP%.safetensors}.json" models/pmp-tiny-rn-clip.json
echo "shipped models/pmp_default.safetensors and models/pmp-tiny-rn-clip.safetensors; report: $RUNS/evaluation/report.md"
