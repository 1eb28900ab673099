#!/usr/bin/env bash
# The one command for a lent GPU machine (< 8 min): the node's predictor on CUDA with the shipped model and a
# random-valued FC-CLIP-size model, fp32 vs bf16/fp16 autocast (parity and speed) and ONNX Runtime's GPU
# provider, in one table (bench/gpu_checks.py; expected output: docs/gpu_checks.md), then the CUDA-only
# model tests.
#   bash bench/run_gpu_checks.sh [OUT_DIR]          (default: $OUT when set, else /tmp/pmp_gpu_checks)
#   bash bench/run_gpu_checks.sh --full [OUT_DIR]   (also the GPU benchmark matrix and cameras batched vs in
#                                                    turn: another ~13 min, a second lent machine's call)
# Without a CUDA device it says so and exits 2 before anything else. Exit status otherwise: 1 when a check
# failed or was skipped for time, the tests' status else.
set -uo pipefail
cd "$(dirname "$0")/.."
full=0
if [ "${1:-}" = "--full" ]; then full=1; shift; fi
out="${1:-${OUT:-/tmp/pmp_gpu_checks}}"
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$python" -c "import torch; print('run_gpu_checks: no CUDA device (torch', torch.__version__, 'built for CUDA',
        torch.version.cuda, '): nothing checked')" >&2
    exit 2
fi
"$python" -c "import torch, onnxruntime as ort; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.get_device_name(0), '| onnxruntime', ort.__version__, ort.get_available_providers())"
status=0
# The table (budget 330 s for starting steps; the FC-CLIP-size ONNX export is the longest one).
(cd bench && timeout 420 "../$python" gpu_checks.py --budget-s 330 --json "$out/gpu_checks.json") 2>&1 \
    | tee "$out/gpu_checks.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 60 "$python" -m pytest -k cuda test/model -q -p no:cacheprovider 2>&1 | tee "$out/pytest_cuda.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ "$full" -eq 1 ]; then
    model=(--random-model)
    [ -f models/pmp_default.safetensors ] && model=(--model models/pmp_default.safetensors)
    timeout 480 "$python" bench/gpu_bench.py "${model[@]}" --compile --cuda-graphs --budget-s 360 \
        --json "$out/gpu_bench.json" 2>&1 | tee "$out/gpu_bench.txt"
    # Issue 16: several cameras on one node, their frames batched vs in turn (a batch must raise the throughput).
    timeout 300 "$python" bench/bench_cameras.py "${model[@]}" --device cuda --cameras 2 4 --duration 10 \
        --camera-batching batch round_robin --json "$out/cameras.json" 2>&1 | tee "$out/cameras.txt"
fi
exit "$status"
