"""instruction_frame_metrics / aggregate_instruction_metrics on hand-built frames with known answers."""

import numpy as np
import pytest

from pmp_ros.eval.metrics.frame_metrics import (
    FramePrediction,
    FrameTruth,
    aggregate_instruction_metrics,
    instruction_frame_metrics,
)

SEEN, UNSEEN = "red star", "red circle"  # red = colour 0, circle = shape 0: (0 + 0) % 4 == 0 -> unseen


def _truth(targets=(1, 2)) -> FrameTruth:
    image = np.zeros((20, 30), np.uint16)
    image[2:8, 2:8] = 1  # target 1, 36 px
    image[10:15, 10:15] = 2  # target 2, 25 px
    image[0:2, 20:30] = 3  # a non-target object
    return FrameTruth(
        image,
        {1: SEEN, 2: UNSEEN, 3: "blue star"},
        targets,
        {1: (0.0, 0.0, 1.0), 2: (0.1, 0.0, 1.0)},
        (SEEN, UNSEEN),
        {1: 0.0, 2: 0.5},
    )


def _relabel(truth: FrameTruth, mapping: dict[int, int]) -> np.ndarray:
    label = np.zeros_like(truth.instance_image)
    for true_id, pred_id in mapping.items():
        label[truth.instance_image == true_id] = pred_id
    return label


def test_perfect_prediction():
    truth = _truth()
    pred = FramePrediction(
        _relabel(truth, {1: 7, 2: 9}),
        [(7, SEEN, 0.9), (9, UNSEEN, 0.8)],
        [(7, 4, 4, (0.0, 0.0, 1.0)), (9, 12, 12, (0.1, 0.0, 1.0))],
    )
    r = instruction_frame_metrics(pred, truth)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 0, 0)
    assert [t["best_iou"] for t in r["targets"]] == [1.0, 1.0]
    assert [t["area"] for t in r["targets"]] == [36, 25]
    assert [t["occlusion"] for t in r["targets"]] == [0.0, 0.5]
    assert (r["points_inside"], r["points_total"]) == (2, 2)
    assert r["errors_3d"] == [0.0, 0.0]
    agg = aggregate_instruction_metrics([r])
    for split in ("all", "seen", "unseen"):
        assert agg[split]["precision"] == agg[split]["recall"] == agg[split]["f1"] == 1.0
        assert agg[split]["mean_target_iou"] == 1.0
    assert agg["seen"]["targets"] == agg["unseen"]["targets"] == 1


def test_missed_target_false_positive_point_outside_and_3d_error():
    truth = _truth()
    # Target 1 found but its point lies on the background; target 2 missed; non-target 3 predicted.
    label = _relabel(truth, {1: 1, 3: 2})
    pred = FramePrediction(label, [(1, SEEN, 0.9), (2, SEEN, 0.6)], [(1, 0, 0, (0.3, 0.4, 1.0)), (2, 25, 1, None)])
    r = instruction_frame_metrics(pred, truth)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert [t["matched"] for t in r["targets"]] == [True, False]
    assert r["targets"][1]["best_iou"] == 0.0
    assert (r["points_inside"], r["points_total"]) == (0, 1)  # the FP's point is not counted
    assert r["errors_3d"] == [pytest.approx(0.5)]
    agg = aggregate_instruction_metrics([r])
    assert agg["all"]["precision"] == 0.5 and agg["all"]["recall"] == 0.5 and agg["all"]["f1"] == 0.5
    assert agg["all"]["mean_target_iou"] == 0.5
    assert agg["all"]["points_inside_share"] == 0.0
    assert agg["all"]["error_3d_m"]["median"] == pytest.approx(0.5)
    # The FP is labelled with a seen class; the missed target is unseen.
    assert agg["seen"]["precision"] == 0.5 and agg["seen"]["recall"] == 1.0
    assert agg["unseen"]["recall"] == 0.0 and agg["unseen"]["precision"] is None


def test_iou_threshold_and_partial_mask():
    truth = _truth(targets=(1,))
    label = np.zeros_like(truth.instance_image)
    label[2:8, 2:5] = 1  # half of target 1: IoU 0.5
    pred = FramePrediction(label, [(1, SEEN, 0.9)], [])
    assert instruction_frame_metrics(pred, truth)["tp"] == 1
    r = instruction_frame_metrics(pred, truth, iou_threshold=0.6)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 1, 1)
    assert r["targets"][0]["best_iou"] == pytest.approx(0.5)


def test_nothing_to_find_and_invisible_target():
    truth = _truth(targets=(4,))  # id 4 has no visible pixel: cannot be found, not counted
    empty = FramePrediction(np.zeros_like(truth.instance_image), [], [])
    r = instruction_frame_metrics(empty, truth)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 0, 0) and r["invisible_targets"] == [4]
    alarm = FramePrediction(_relabel(truth, {3: 1}), [(1, "blue star", 0.7)], [])
    records = [r, instruction_frame_metrics(alarm, _truth(targets=()))]
    agg = aggregate_instruction_metrics(records)
    assert agg["frames_without_targets"] == 2 and agg["false_alarm_frames"] == 1
    assert agg["all"]["precision"] == 0.0 and agg["all"]["recall"] is None


def test_one_to_one_matching():
    truth = _truth(targets=(1,))
    label = _relabel(truth, {1: 1})
    label[2:8, 2:3] = 2  # a sliver of the same object as a second instance: a duplicate, so an FP
    pred = FramePrediction(label, [(1, SEEN, 0.9), (2, SEEN, 0.8)], [])
    r = instruction_frame_metrics(pred, truth)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)
    assert r["predictions"][0]["matched_target"] == 1 and r["predictions"][1]["matched_target"] is None


def test_shape_mismatch_raises():
    truth = _truth()
    with pytest.raises(ValueError, match="label image"):
        instruction_frame_metrics(FramePrediction(np.zeros((5, 5), np.uint16), [], []), truth)


def test_false_positives_are_told_apart_by_what_they_lie_on():
    truth = _truth()
    label = np.zeros_like(truth.instance_image)
    label[2:8, 2:8] = 1  # matches target 1
    label[11:13, 10:15] = 2  # 10 px inside target 2 (25 px): IoU 0.4, not matched -> poor_mask
    label[0:2, 20:30] = 3  # all of non-target object 3 -> other_object
    label[16:20, 0:10] = 4  # nothing there -> background
    pred = FramePrediction(label, [(1, SEEN, 0.9), (2, UNSEEN, 0.8), (3, SEEN, 0.7), (4, SEEN, 0.6)], [])
    r = instruction_frame_metrics(pred, truth)
    kinds = {p["id"]: p["fp_kind"] for p in r["predictions"]}
    assert kinds == {1: None, 2: "poor_mask", 3: "other_object", 4: "background"}
    assert aggregate_instruction_metrics([r])["all"]["false_positives"] == {
        "poor_mask": 1,
        "other_object": 1,
        "background": 1,
    }

    # A second instance on an already matched target is a duplicate; a corner of object 3 a part of it.
    label = np.zeros_like(truth.instance_image)
    label[2:8, 2:7] = 1  # 30 of target 1's 36 px: IoU 0.83, matched
    label[2:8, 7:8] = 2  # the rest of target 1 -> duplicate
    label[0:2, 20:23] = 3  # 6 of object 3's 20 px -> other_part
    pred = FramePrediction(label, [(1, SEEN, 0.9), (2, SEEN, 0.8), (3, SEEN, 0.7)], [])
    r = instruction_frame_metrics(pred, truth)
    assert {p["id"]: p["fp_kind"] for p in r["predictions"]} == {1: None, 2: "duplicate", 3: "other_part"}


def test_false_positive_on_several_objects_is_background():
    """A prediction with no object under half of its pixels lies on no single object."""
    truth = _truth()
    label = np.zeros_like(truth.instance_image)
    label[0:10, 0:10] = 5  # 100 px: 36 of target 1 (IoU 0.36), the rest background
    pred = FramePrediction(label, [(5, SEEN, 0.9)], [])
    r = instruction_frame_metrics(pred, truth)
    assert r["predictions"][0]["fp_kind"] == "background"


def test_records_without_kinds_count_as_unknown():
    truth = _truth()
    label = np.zeros_like(truth.instance_image)
    label[16:20, 0:10] = 4
    r = instruction_frame_metrics(FramePrediction(label, [(4, SEEN, 0.6)], []), truth)
    del r["predictions"][0]["fp_kind"]
    assert aggregate_instruction_metrics([r])["all"]["false_positives"] == {"unknown": 1}
