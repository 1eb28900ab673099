#!/usr/bin/env bash
# The candidate for the shipped model: the shipped model fine-tuned on the prompted objective
# (config/train/pmp_prompted.yaml: the prompted classes are the targets, other objects "no object"), or with
# OBJECTIVE=weighted on the weighted one (every object a target, the unnamed ones at weight 0.25).
# Resumable: run it again after a stop and it continues from <out>/last.pt. Snapshots every SNAPSHOT steps
# for the learning curve (python -m pmp_ros.eval.curves "$OUT" --snapshots ...).
#   scripts/train_prompted.sh                         # STEPS=4000 THREADS=1 OUT=runs/prompted_ft
#   OBJECTIVE=weighted OUT=runs/weighted_ft scripts/train_prompted.sh
#   OBJECTIVE=weighted SET="train.unprompted_class_weight=1.0" OUT=runs/weighted_cls_ft scripts/train_prompted.sh
#   CLIP=runs/clip_more/clip.safetensors OUT=runs/newclip_ft scripts/train_prompted.sh   # on a newer CLIP tower
# SET: further space-separated --set overrides, applied last.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${PMP_VENV:-$ROOT/.venv}/bin"
STEPS="${STEPS:-4000}"
THREADS="${THREADS:-1}"
OUT="${OUT:-runs/prompted_ft}"
INIT="${INIT:-models/pmp_default.safetensors}"
SNAPSHOT="${SNAPSHOT:-500}"
OBJECTIVE="${OBJECTIVE:-prompted}"
# The CLIP towers of the fine-tuned model (train.clip_from_pretrained): by default the one INIT was trained on.
CLIP="${CLIP:-models/pmp-tiny-rn-clip.safetensors}"
read -r -a EXTRA <<< "${SET:-}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS="$THREADS"
mkdir -p "$OUT"
"$BIN/pmp-train" --config config/train/pmp_prompted.yaml --out "$OUT" --resume \
    --set "train.init_from=$INIT" "model.clip.pretrained=$CLIP" train.clip_from_pretrained=true \
    "train.steps=$STEPS" "train.threads=$THREADS" train.lr=0.0002 \
    "train.objective=$OBJECTIVE" \
    train.warmup_steps=50 "train.snapshot_every=$SNAPSHOT" train.checkpoint_every=250 "${EXTRA[@]}" \
    >> "$OUT/train.log" 2>&1
echo "saved $OUT/model.safetensors"
