#!/usr/bin/env bash
# Zero-shot crop accuracy (zoomed windows, as the crop tower is trained and used) of every snapshot of the
# crop tower run, and of the shipped tower on native and on zoomed windows for reference.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
OUT=docs/results/round4_2026-12-08/crop_tower_zero_shot.jsonl
: > "$OUT"
zero_shot() {  # name, weights, zoom
  .venv/bin/python -m pmp_ros.eval.zero_shot --weights "$2" --scenes 300 --zoom "$3" 2>/dev/null \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d.update(name='$1', zoom=$3); print(json.dumps(d))" >> "$OUT"
}
zero_shot shipped_native models/pmp-tiny-rn-clip.safetensors 0
zero_shot shipped_zoomed models/pmp-tiny-rn-clip.safetensors 1.5
for snapshot in runs/crop_tower/clip_snapshots/step_*.safetensors; do
  zero_shot "crop_tower_$(basename "$snapshot" .safetensors)" "$snapshot" 1.5
done
