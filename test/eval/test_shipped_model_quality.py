"""Quality regression of the shipped model: the first 60 scenes of the evaluation set, figures measured when
the model was shipped (2026-12-08: PMP with 32 queries on the weighted objective, 12,000 + 8,000 steps, the
crop tower, threshold 0.20, alpha 0.3; docs/results.md) minus a stated margin. A change to the model, inference, data
or metrics that loses accuracy fails here."""

from pathlib import Path

import pytest

from pmp_ros.eval.evaluate import evaluate
from pmp_ros.model.segmenter import load_segmenter

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pmp_default.safetensors"
SCENES = 60
# measured value, margin (absolute): margins cover thread-count float differences on borderline pixels.
EXPECTED = {
    "instruction F1@0.5": (0.717, 0.06),
    "proposal recall R@1": (0.688, 0.06),
    "proposal recall with all queries": (0.800, 0.06),
    "semantic mIoU": (0.427, 0.03),
    "points inside the target": (0.975, 0.1),
}


@pytest.mark.slow
def test_shipped_model_keeps_its_measured_quality():
    model, cfg = load_segmenter(SHIPPED)
    result = evaluate(model, cfg, SCENES, progress=False)
    instruction, recall = result["instruction"]["all"], result["proposals"]["all"]["recall"]
    measured = {
        "instruction F1@0.5": instruction["f1"],
        "proposal recall R@1": recall["1"],
        "proposal recall with all queries": recall["all"],
        "semantic mIoU": result["semantic"]["miou"],
        "points inside the target": instruction["points_inside_share"],
    }
    below = {
        name: (round(measured[name], 4), value - margin)
        for name, (value, margin) in EXPECTED.items()
        if measured[name] is None or measured[name] < value - margin
    }
    assert not below, f"below the shipped model's figures minus margin (measured, floor): {below}"
