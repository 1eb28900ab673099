#!/usr/bin/env bash
# The round's candidates on 500 VALIDATION scenes, beside the shipped model (two processes, one thread
# each). The rule, fixed before looking as in the rounds before: the highest instruction F1 among the
# candidates whose whole-vocabulary hmean is not below the shipped model's. Copies made by ship_model:
#   more_t0.20_a0.2        runs/q32_more/model.safetensors --set inference.score_threshold=0.20 ensemble.alpha=0.2 ensemble.beta=0.8
#   more_tower_t0.20_a0.2  the same + --crop-tower runs/crop_tower/clip.safetensors
#   more_tower_t0.20_a0.3 / _a0.4   that copy --set ensemble.alpha=0.3 / 0.4
#   shipped_tower_t0.20_a0.2        models/pmp_default.safetensors --crop-tower runs/crop_tower/clip.safetensors
#   shipped_tower_t0.20_a0.4        that copy --set ensemble.alpha=0.4
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
D=runs/r4_tune
common=(--split validation --scenes 500 --examples 0 --no-progress)
.venv/bin/pmp-eval --model $D/more_t0.20_a0.2.safetensors --name more_t0.20_a0.2 \
    --model $D/more_tower_t0.20_a0.2.safetensors --name more_tower_t0.20_a0.2 \
    --model $D/more_tower_t0.20_a0.4.safetensors --name more_tower_t0.20_a0.4 \
    "${common[@]}" --out $D/eval500_a &
first_job=$!
.venv/bin/pmp-eval --model models/pmp_default.safetensors --name shipped \
    --model $D/more_tower_t0.20_a0.3.safetensors --name more_tower_t0.20_a0.3 \
    --model $D/shipped_tower_t0.20_a0.2.safetensors --name shipped_tower_t0.20_a0.2 \
    --model $D/shipped_tower_t0.20_a0.4.safetensors --name shipped_tower_t0.20_a0.4 \
    "${common[@]}" --out $D/eval500_b
wait "$first_job"
