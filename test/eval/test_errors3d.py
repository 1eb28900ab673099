"""3D errors of the model's own matched instances (pmp_ros.eval.metrics.errors3d through frame_metrics and pmp-eval):
given the true masks as the prediction they are the true-mask evaluation's errors (eval/objects3d.py) and
small; the shipped model's matched targets get them in the records, metrics.json and report.md."""

import json
from pathlib import Path

import numpy as np
import pytest

from pmp_ros.eval.cli import main
from pmp_ros.eval.evaluate import eval_cases, frame_prediction, frame_truth
from pmp_ros.eval.metrics.errors3d import GOALS, MIN_AREA
from pmp_ros.eval.metrics.frame_metrics import instruction_frame_metrics
from pmp_ros.eval.objects3d import evaluate_scene
from pmp_ros.model.inference import Instance, Prediction, Predictor
from pmp_ros.objects3d import mask_box
from pmp_ros.perception.frame import FramePipeline

from model_fixtures import build_small_segmenter

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pmp_default.safetensors"
ERRORS = ("centroid_error_m", "size_error_m", "normal_error_deg", "normal_face")


def test_true_masks_as_the_prediction_get_the_true_mask_evaluations_errors():
    model, cfg = build_small_segmenter()
    pipeline = FramePipeline(Predictor(model, cfg.inference, "cpu"))  # its model is never run: predictions given
    targets = []
    for case in eval_cases(20):
        if case.instruction is None:
            continue
        scene = case.scene
        wanted = [o for o in scene.objects if o.id in case.instruction.all_target_ids and o.visible_area > 0]
        # The prediction is each target's own visible mask, measured as pmp-eval measures the model's.
        instances = []
        for o in wanted:
            mask = scene.mask(o.id)
            box = mask_box(mask)
            instances.append(Instance(o.id, o.class_name, case.prompts.index(o.class_name), 1.0, box, mask.sum(), mask))
        label_image = np.where(np.isin(scene.instance, [o.id for o in wanted]), scene.instance, 0).astype(np.uint16)
        prediction = Prediction(label_image, instances, None)
        record = instruction_frame_metrics(frame_prediction(pipeline, case, prediction, 1.0), frame_truth(case))
        on_true_masks = {r["id"]: r for r in evaluate_scene(scene)}
        for target in record["targets"]:
            assert target["matched"] and target["best_iou"] == 1.0
            expected = on_true_masks[target["id"]]
            for key in ERRORS:
                assert target[key] == pytest.approx(expected[key], abs=1e-9), key
            targets.append(target)
    large = [t for t in targets if t["area"] >= MIN_AREA]
    assert len(large) >= 15 and sum(t["size_error_m"] is not None for t in large) >= 5
    # Measured on these scenes: centroid median 1.5 mm (the erosion's shift), normal median 1.6 degrees.
    assert np.median([t["centroid_error_m"] for t in large]) < GOALS["centroid_error_m"] / 2
    assert np.median([t["normal_error_deg"] for t in large if t["normal_error_deg"] is not None]) < 5


@pytest.mark.slow
def test_the_shipped_models_matched_targets_have_their_3d_errors_in_records_metrics_and_report(tmp_path):
    out = tmp_path / "eval"
    args = ["--model", str(SHIPPED), "--name", "side", "--scenes", "8", "--examples", "0", "--device", "cpu"]
    assert main([*args, "--no-progress", "--out", str(out)]) == 0
    records = json.loads((out / "records-side.json").read_text())
    targets = [t for r in records for t in r["targets"]]
    matched = [t for t in targets if t["matched"]]
    assert len(matched) >= 5 and all(key in t for t in targets for key in ERRORS)
    assert all(t[key] is None for t in targets if not t["matched"] for key in ERRORS)
    assert all(t["centroid_error_m"] is not None for t in matched)  # every matched target has depth

    summary = json.loads((out / "metrics.json").read_text())["models"]["side"]["objects_3d"]
    large = [t for t in matched if t["area"] >= MIN_AREA]
    assert summary["matched"]["targets"] == len(matched) and summary["matched_large"]["targets"] == len(large)
    centroid = summary["matched_large"]["centroid_error_m"]
    assert centroid["count"] == len(large)
    assert centroid["median"] == pytest.approx(np.median([t["centroid_error_m"] for t in large]))
    # Measured on these scenes: centroid median 3.2 mm, normal median 2.4 degrees on the matched targets of
    # >= 200 px (the predicted masks are not the true ones, so a little above the true masks' figures).
    assert centroid["median"] < GOALS["centroid_error_m"] and summary["goals"]["centroid_error_m"]["met"]
    assert summary["matched_large"]["normal_error_deg"]["median"] < GOALS["normal_error_deg"]
    assert summary["goals"]["normal_error_deg"]["met"]

    report = (out / "report.md").read_text()
    assert "### 3D objects of matched targets" in report
    assert f"| centroid (mm) | {summary['matched']['centroid_error_m']['count']} |" in report
    assert "- goal: median centroid error <= 10 mm on matched targets of >= 200 px: **met**" in report
    assert "- goal: median normal error <= 10 deg on matched targets of >= 200 px: **met**" in report
