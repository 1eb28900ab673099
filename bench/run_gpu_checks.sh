#!/usr/bin/env bash
# The one command for a lent GPU machine: the GPU benchmark (< 8 min), several cameras batched vs in turn
# (< 5 min) and the CUDA-only model tests.
#   bash bench/run_gpu_checks.sh [OUT_DIR]      (default: $OUT when set, else /tmp/pmp_gpu_checks)
# Uses the shipped model when models/pmp_default.safetensors exists, else random weights of the same
# architecture (same timing). Exit status: the tests' (the benchmark never fails a machine without CUDA).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/pmp_gpu_checks}}"
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
model=(--random-model)
[ -f models/pmp_default.safetensors ] && model=(--model models/pmp_default.safetensors)
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
timeout 480 "$python" bench/gpu_bench.py "${model[@]}" --compile --cuda-graphs --budget-s 360 \
    --json "$out/gpu_bench.json" 2>&1 | tee "$out/gpu_bench.txt"
# Issue 16: several cameras on one node, their frames batched vs in turn (a batch must raise the throughput).
timeout 300 "$python" bench/bench_cameras.py "${model[@]}" --device cuda --cameras 2 4 --duration 10 \
    --camera-batching batch round_robin --json "$out/cameras.json" 2>&1 | tee "$out/cameras.txt"
"$python" -m pytest -k cuda test/model -q -p no:cacheprovider 2>&1 | tee "$out/pytest_cuda.txt"
exit "${PIPESTATUS[0]}"
