"""End to end: evaluate() with the small random model on a few scenes, and the pmp-eval report."""

import dataclasses
import json

import numpy as np
import pytest

from pmp_ros.data import vocabulary
from pmp_ros.eval.cli import main
from pmp_ros.eval.evaluate import EvalCase, eval_cases, evaluate, is_cluttered, predict_instructions
from pmp_ros.model.inference import Predictor

from model_fixtures import build_small_segmenter, write_small_checkpoint


@pytest.fixture(scope="module")
def small():
    model, cfg = build_small_segmenter()
    # A random model rarely passes the default threshold; keep every candidate so instances exist.
    cfg.inference = dataclasses.replace(cfg.inference, score_threshold=0.0)
    return model, cfg


def test_clutter_rule_keeps_the_fraction_in_every_prefix():
    assert [is_cluttered(i, 0.5) for i in range(4)] == [False, True, False, True]
    for n in (7, 10, 33):
        assert abs(sum(is_cluttered(i, 0.3) for i in range(n)) - 0.3 * n) < 1
    assert not any(is_cluttered(i, 0.0) for i in range(10)) and all(is_cluttered(i, 1.0) for i in range(10))


def test_batched_instruction_path_equals_the_predictor(small):
    model, cfg = small
    predictor = Predictor(model, cfg.inference, "cpu")
    scenes = [c.scene for c in eval_cases(3)]
    # Many prompts, so that random queries often pick a prompt class and instances exist to compare.
    prompt_sets = [vocabulary.all_classes()[k::3][:16] for k in range(3)]
    cases = [EvalCase(i, s, False, None, p, None) for i, (s, p) in enumerate(zip(scenes, prompt_sets))]
    outputs = predict_instructions(predictor, cases)
    compared = 0
    for case, output in zip(cases, outputs):
        predictor.set_prompts(case.prompts, vocabulary.all_classes())
        ref = predictor.predict([case.scene.rgb])[0]
        assert np.array_equal(ref.label_image, output.prediction.label_image)
        got = output.prediction.instances
        assert [(i.id, i.label) for i in ref.instances] == [(i, label) for i, label, _ in got]
        assert [i.score for i in ref.instances] == pytest.approx([s for _, _, s in got], abs=1e-4)
        compared += len(got)
    assert compared > 0


def test_evaluate_four_scenes(small):
    model, cfg = small
    result = evaluate(model, cfg, num_scenes=4, progress=False)
    assert result["setup"]["num_scenes"] == 4 and result["setup"]["cluttered_scenes"] == 2
    assert set(result) >= {"semantic", "instruction", "difficulty", "proposals", "timing", "records"}
    assert len(result["semantic"]["per_class_iou"]) == 100
    assert 0.0 <= result["semantic"]["pixel_accuracy"] <= 1.0
    records = result["records"]
    assert len(records) + result["setup"]["no_instruction"] == 4
    targets = [t for r in records for t in r["targets"]]
    assert result["instruction"]["all"]["targets"] == len(targets) > 0
    assert all(-1 <= t["proposal_rank"] < cfg.decoder.num_queries for t in targets)
    assert set(result["proposals"]["all"]["recall"]) == {"1", "3", "5", "all"}
    r1, rall = result["proposals"]["all"]["recall"]["1"], result["proposals"]["all"]["recall"]["all"]
    assert r1 <= rall
    assert set(result["difficulty"]) == {
        "objects <=5",
        "objects 6-12",
        "objects 13-25",
        "small (<200 px)",
        "large (>=200 px)",
        "occluded (>0.3)",
        "unoccluded (<=0.3)",
    }
    json.dumps(result)  # JSON-able throughout


def test_pmp_eval_writes_a_report(tmp_path):
    weights = [
        write_small_checkpoint(tmp_path / "a.safetensors"),
        write_small_checkpoint(tmp_path / "b.safetensors", pmp=False, seed=1),
    ]
    out = tmp_path / "report"
    assert (
        main(
            [
                "--model",
                str(weights[0]),
                "--model",
                str(weights[1]),
                "--name",
                "pmp",
                "--name",
                "twin",
                "--scenes",
                "4",
                "--out",
                str(out),
                "--examples",
                "2",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"pmp", "twin"}
    assert {"semantic", "instruction", "proposals", "difficulty"} <= set(metrics["models"]["pmp"])
    assert len(json.loads((out / "records-pmp.json").read_text())) <= 4
    report = (out / "report.md").read_text()
    assert "--scenes 4" in report and metrics["weights"]["pmp"]["sha256"] in report
    for heading in (
        "## Comparison",
        "### Semantic segmentation",
        "### Instruction following",
        "### Proposal recall",
        "### Difficulty",
        "| mIoU seen | mIoU unseen | hmean",
    ):
        assert heading in report
    for png in ("proposal_recall.png", "per_class_iou-pmp.png", "per_class_iou-twin.png"):
        assert (out / png).stat().st_size > 0
    assert len(list(out.glob("example-pmp-*.png"))) == 2


def test_seed_summary_gives_mean_and_spread_per_variant():
    from pmp_ros.eval.report import _seed_summary

    def result(miou_seen):
        split = {"f1": 0.5, "mean_target_iou": 0.4, "points_inside_share": 1.0}
        return {
            "semantic": {"miou_seen": miou_seen, "miou_unseen": 0.1, "hmean": 0.2},
            "instruction": {"seen": split, "unseen": split, "all": split},
            "proposals": {"all": {"recall": {"1": 0.3, "5": 0.6}}},
        }

    lines = _seed_summary(
        {"pmp_s0": result(0.2), "pmp_s1": result(0.4), "twin_s0": result(0.1), "twin_s1": result(0.1)}
    )
    text = "\n".join(lines)
    assert "| pmp | 2 | 0.300 [0.200, 0.400] |" in text
    assert "| twin | 2 | 0.100 [0.100, 0.100] |" in text
    assert _seed_summary({"a": result(0.1), "b": result(0.2)}) == []
