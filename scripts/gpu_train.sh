#!/usr/bin/env bash
# Train on a lent GPU machine within one call's 10 minutes, and bring the run back (issue #24 item 6).
# Here, once:   scripts/gpu_wheels.sh
# There (the device tool's `run`, carry [".whl"], timeout_s 600):
#   MINUTES=7 CONFIG=config/train/pmp_prompted.yaml SET="train.objective=weighted" bash scripts/gpu_train.sh
# It trains pmp-train's recipe on CUDA with every spare core rendering scenes (train.data_workers), stops
# after MINUTES (train.max_minutes: checkpointed), and packs the run folder into $OUT as pieces under the
# tool's 16 MiB a file. Back here:
#   cat <files_at>/run.tgz.* | tar xz -C runs/     # runs/gpu_run (last.pt, model.safetensors, log.jsonl)
#   pmp-train --config <the same> --out runs/gpu_run --resume --set <the same> train.steps=<more>   # continue on CPU
# Without CUDA it says so and exits 2 (GPU_TRAIN_ALLOW_CPU=1: a CPU smoke run of the same steps).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${MINUTES:-7}"
STEPS="${STEPS:-12000}"
CONFIG="${CONFIG:-config/train/pmp_prompted.yaml}"
SET="${SET:-}"
OUT="${OUT:-/tmp/pmp_gpu_train}"
RUN="${RUN:-/tmp/gpu_run}"
python="${PYTHON:-python3}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then
  python=.venv/bin/python  # a machine set up by scripts/setup.sh
elif [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then  # the lent machine: its python3 plus the wheels
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  if [ -z "${GPU_TRAIN_ALLOW_CPU:-}" ]; then
    echo "gpu_train: no CUDA device: nothing trained (GPU_TRAIN_ALLOW_CPU=1 for a CPU smoke run)" >&2
    exit 2
  fi
fi
workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
mkdir -p "$OUT"
# shellcheck disable=SC2086  # SET holds several overrides
"$python" -m pmp_ros.train.train_pmp --config "$CONFIG" --out "$RUN" --resume \
    --set "train.steps=$STEPS" "train.max_minutes=$MINUTES" "train.data_workers=$workers" \
    train.checkpoint_every=500 $SET 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tee "$OUT/train.txt"
tar czf - -C "$(dirname "$RUN")" "$(basename "$RUN")" | split -b 15m -d - "$OUT/run.tgz."
ls -l "$OUT"
