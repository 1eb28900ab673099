"""The error decomposition (pmp-eval --diagnose) with the small random model on a few scenes."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from pmp_ros.data import vocabulary
from pmp_ros.eval.cli import main
from pmp_ros.eval.diagnose import MISS_CAUSES, _miss_cause, _true_masks_at_dense_grid, diagnose_outputs
from pmp_ros.eval.evaluate import eval_cases, evaluate
from pmp_ros.model.inference import Predictor

from model_fixtures import build_small_segmenter, write_small_checkpoint


def test_true_masks_follow_the_model_input_onto_the_dense_grid():
    mask = torch.zeros(1, 240, 320, dtype=torch.bool)
    mask[0, 32:64, 64:96] = True  # one stride-32 cell at input size 240x320 (padded to 256x320)
    grid = _true_masks_at_dense_grid(mask, (240, 320), (8, 10))
    assert grid.shape == (1, 8, 10)
    assert grid[0, 1, 2] == pytest.approx(1.0) and grid.sum() == pytest.approx(1.0)
    # A half-size input (the model resizes to 120x160, stride 32 -> 4x5 cells): the mask shrinks with it.
    half = _true_masks_at_dense_grid(mask, (120, 160), (4, 5))
    assert half.sum() == pytest.approx(0.25) and half[0, 0, 1] == pytest.approx(0.25)


def test_threshold_sweep_agrees_with_the_evaluation_at_the_models_threshold():
    model, cfg = build_small_segmenter()
    cfg.inference = dataclasses.replace(cfg.inference, score_threshold=0.0)
    predictor = Predictor(model, cfg.inference, "cpu")
    cases = list(eval_cases(4, split="validation"))
    result = diagnose_outputs(predictor, cases, thresholds=(0.0, 0.9), progress=False)
    evaluated = evaluate(model, cfg, 4, progress=False, split="validation")["instruction"]["all"]
    assert result["thresholds"]["by_threshold"]["0.0"]["all"]["f1"] == evaluated["f1"]
    objects = sum(1 for c in cases if c.prompts for o in c.scene.objects if o.visible_area > 0)
    masks = result["masks"]["all objects / all / any size"]
    assert masks["count"] == objects and 0.0 <= masks["mean_best_iou"] <= 1.0
    for path in ("in_vocabulary", "clip_true_mask", "clip_crop_true_mask", "ensemble_true_mask", "model_ensemble"):
        row = result["classes"][f"{path} / all / any size"]
        assert row["count"] == objects and row["correct"] <= row["colour"] and row["correct"] <= row["shape"]
    misses = result["misses"]["all"]
    assert misses["targets"] == evaluated["targets"] and misses["found"] == evaluated["tp"]
    assert misses["found"] + sum(misses[cause] for cause in MISS_CAUSES) == misses["targets"]
    assert sum(result["misses"]["shapes_confused"].values()) == misses[MISS_CAUSES[1]]


def _one_hot_log_probs(classes: list[str], probability: float) -> torch.Tensor:
    """log-probs [Q, C+1]: query q names classes[q] with `probability`, the rest spread evenly."""
    vocab = vocabulary.all_classes()
    probs = torch.full((len(classes), len(vocab) + 1), (1 - probability) / len(vocab))
    for q, name in enumerate(classes):
        probs[q, vocab.index(name)] = probability
    return probs.log()


@pytest.mark.parametrize(
    ("named", "probability", "cause"),
    [
        ("red square", 0.9, MISS_CAUSES[1]),
        ("blue star", 0.9, MISS_CAUSES[2]),
        ("blue square", 0.9, MISS_CAUSES[3]),
        ("red star", 0.1, MISS_CAUSES[4]),
        ("red star", 0.9, MISS_CAUSES[5]),
    ],
)
def test_a_missed_target_is_put_down_to_its_covering_query(named, probability, cause):
    vocab = vocabulary.all_classes()
    cfg = dataclasses.replace(build_small_segmenter()[1].inference, score_threshold=0.5, mask_threshold=0.5)
    mask_logits = torch.full((2, 4, 4), 5.0)  # confident masks: the score is the class probability
    # Query 0 covers the target (IoU 0.8), query 1 does not (0.3) though it is surer of the target's class.
    log_probs = torch.cat([_one_hot_log_probs([named], probability), _one_hot_log_probs(["red star"], 0.99)])
    iou = torch.tensor([0.8, 0.3])
    truth = vocab.index("red star")
    instead = None if named == "red star" else named
    assert _miss_cause(iou, log_probs, truth, vocab, cfg, mask_logits) == (cause, instead)
    assert _miss_cause(torch.tensor([0.4, 0.3]), log_probs, truth, vocab, cfg, mask_logits) == (MISS_CAUSES[0], None)


def test_pmp_eval_diagnose_writes_its_tables(tmp_path):
    weights = write_small_checkpoint(tmp_path / "a.safetensors")
    out = tmp_path / "diag"
    assert (
        main(
            [
                "--diagnose",
                "--model",
                str(weights),
                "--name",
                "small",
                "--scenes",
                "3",
                "--split",
                "validation",
                "--probe-train-scenes",
                "4",
                "--probe-steps",
                "2",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    result = json.loads((out / "diagnosis-small.json").read_text())
    assert set(result["linear_probes"]) == {"res2", "res3", "res4", "res5", "clip_vis_dense"}
    assert all(0.0 <= v["object_iou"] <= 1.0 for v in result["linear_probes"].values())
    assert [v["stride"] for v in result["linear_probes"].values()] == [4, 8, 16, 32, 32]
    report = (out / "diagnosis-small.md").read_text()
    for heading in (
        "## Masks alone",
        "## Classes given the true mask",
        "## Calibration",
        "## Misses",
        "## Linear probes",
    ):
        assert heading in report
    assert np.isfinite(result["thresholds"]["best_threshold"])
