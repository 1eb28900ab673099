"""bench/gpu_checks.py and bench/run_gpu_checks.sh where no GPU is: they refuse clearly, and the same code
path runs on the CPU (PyTorch fp32 and bf16 autocast, ONNX Runtime's CPU provider) and prints its table with
the parity columns. Timing figures are never asserted."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pmp_ros.model.inference import Instance, Prediction

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a CUDA device")


def _script(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "gpu_checks.py", *args],
        cwd=REPO / "bench",
        timeout=timeout,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _gpu_checks():
    """bench/gpu_checks.py as a module (the bench scripts import benchlib from their own folder)."""
    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))
    return importlib.import_module("gpu_checks")


def _prediction(boxes, labels, scores, semantic_value=0):
    label_image = np.zeros((20, 20), np.uint16)
    instances = []
    for index, ((y0, y1, x0, x1), label, score) in enumerate(zip(boxes, labels, scores), start=1):
        mask = np.zeros((20, 20), bool)
        mask[y0:y1, x0:x1] = True
        label_image[mask] = index
        instances.append(Instance(index, label, 0, score, (x0, y0, x1 - 1, y1 - 1), int(mask.sum()), mask))
    return Prediction(label_image, instances, np.full((20, 20), semantic_value, np.int32))


def test_parity_matches_instances_by_label_and_iou():
    parity = _gpu_checks().parity
    reference = _prediction([(0, 10, 0, 10), (12, 18, 12, 18)], ["cup", "bowl"], [0.9, 0.6])
    same = parity([reference], [reference])
    assert same["instance_f1"] == 1.0 and same["mean_iou"] == 1.0 and same["semantic_agreement"] == 1.0
    shifted = _prediction([(0, 10, 1, 11), (12, 18, 12, 18)], ["cup", "plate"], [0.8, 0.6], semantic_value=1)
    moved = parity([reference], [shifted])
    assert moved["instance_f1"] == pytest.approx(0.5)  # the cup matches (IoU 9/11), the bowl is now a plate
    assert moved["mean_iou"] == pytest.approx(90 / 110)
    assert moved["max_score_diff"] == pytest.approx(0.1) and moved["semantic_agreement"] == 0.0


@no_cuda
def test_refuses_clearly_without_cuda():
    result = _script()
    assert result.returncode == 2 and "no CUDA device" in result.stderr and "nothing checked" in result.stderr
    shell = subprocess.run(
        ["bash", str(REPO / "bench" / "run_gpu_checks.sh"), "/tmp/unused"], capture_output=True, text=True, timeout=300
    )
    assert shell.returncode == 2 and "no CUDA device" in shell.stderr


def test_cpu_smoke_prints_the_table(tmp_path):
    result = _script(
        "--device",
        "cpu",
        "--models",
        "shipped",
        "--precisions",
        "fp32,bf16",
        "--size",
        "160x128",
        "--iterations",
        "1",
        "--frames",
        "1",
        "--budget-s",
        "800",
        "--json",
        str(tmp_path / "checks.json"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout[result.stdout.index("the node's predictor on none (CPU run)") :]
    rows = [line.split() for line in table.splitlines()[3:] if line.strip().startswith("shipped")]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("torch", "fp32", "160x128"),
        ("torch", "bf16", "160x128"),
        ("onnxruntime", "fp32", "160x128"),
    ]
    assert "CPUExecutionProvider" in table and "failed:" not in table and "skipped:" not in table
