#!/usr/bin/env bash
# Wheels a lent GPU machine lacks for training (its Python 3.12 has torch, numpy, opencv, scipy, yaml,
# safetensors, timm, huggingface_hub; not these), at the versions of requirements/constraints.txt, into .whl/
# (ignored by git; the device call names it in `carry`). Run here, where PyPI is reachable:
#   scripts/gpu_wheels.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PIP="${PMP_VENV:-$ROOT/.venv}/bin/pip"
pins=()
for name in open_clip_torch ftfy wcwidth pycocotools; do
  pins+=("$(grep -i "^${name}==" requirements/constraints.txt)")
done
rm -rf .whl && mkdir -p .whl
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${pins[@]}"
ls -l .whl
