#!/usr/bin/env bash
# The 32-query run's threshold and ensemble on 500 VALIDATION scenes, beside the shipped model (the rule,
# fixed before looking, as for the shipped model: the highest F1 whose whole-vocabulary hmean is not below
# the shipped model's). Two evaluations at once, one thread each (the machine's two cores).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
RUN=${RUN:-runs/weighted_q32/model.safetensors}
mkdir -p runs/q32_tune
half=(); other=()
i=0
for setting in 0.20:0.2 0.15:0.2 0.25:0.2 0.20:0.1 0.20:0.3; do
  IFS=: read -r t alpha <<< "$setting"
  name="q32_t${t}_a${alpha}"
  .venv/bin/python -m pmp_ros.train.ship_model "$RUN" runs/q32_tune/$name.safetensors \
      --set inference.score_threshold=$t ensemble.alpha=$alpha ensemble.beta=0.8 2>/dev/null
  if (( i % 2 == 0 )); then half+=(--model runs/q32_tune/$name.safetensors --name $name)
  else other+=(--model runs/q32_tune/$name.safetensors --name $name); fi
  i=$((i + 1))
done
other+=(--model models/pmp_default.safetensors --name shipped)
.venv/bin/pmp-eval "${half[@]}" --split validation --scenes 500 --examples 0 --no-progress --out runs/q32_tune/eval500_a &
.venv/bin/pmp-eval "${other[@]}" --split validation --scenes 500 --examples 0 --no-progress --out runs/q32_tune/eval500_b
wait
