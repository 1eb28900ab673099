"""Instruction-following metrics of one frame, and their aggregation over frames (pure numpy).

A frame is scored as a detection problem: the instruction's targets are the true objects, every
predicted instance claims to be a target. Matching is one-to-one at mask IoU >= threshold, greedy by
decreasing IoU. Predicted masks are disjoint (a label image) and so are true masks, so at a threshold
>= 0.5 a predicted instance can exceed it with at most one object and vice versa: greedy matching then
equals Hungarian matching.

Records are plain JSON-able dicts so a rosbag evaluation and the synthetic evaluation share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pmp_ros.data import vocabulary
from pmp_ros.data.prism import Prism
from pmp_ros.eval.metrics.errors3d import box_comparable, measurement_errors
from pmp_ros.objects3d import Object3D

# Labels / classes are bucketed into these splits; "other" = not a vocabulary class (open phrase).
SPLITS = ("seen", "unseen", "other")
# What an unmatched prediction lies on (instruction_frame_metrics): a target found by another instance, a
# target it fits too poorly (IoU < the match threshold), an object that is not a target (whole, or a part),
# or no single object (background, or spread over several objects).
FALSE_POSITIVE_KINDS = ("duplicate", "poor_mask", "other_object", "other_part", "background")
# Share of a prediction's pixels that must lie on one object for the prediction to be "on" that object.
DOMINANT_SHARE = 0.5


@dataclass
class FrameTruth:
    """What the frame really holds.

    instance_image: uint16 [H,W], 0 = background, value = object id.
    class_names: object id -> class name.
    target_ids: ids the instruction refers to (empty: nothing to find).
    centres: object id -> 3D centre (x, y, z) in the camera optical frame, metres (may be empty).
    prompts: the instruction's target classes (for per-class / seen-unseen splits).
    occlusions: object id -> occluded fraction in [0, 1] (may be empty: unknown).
    visible_centres: object id -> mean camera-frame point of its visible pixels on noise-free depth, metres
        (may be empty); prisms: object id -> its solid in the camera frame (may be empty); k: the camera's
        3x3 intrinsics (None: unknown). The truths of the 3D errors (errors3d).
    """

    instance_image: np.ndarray
    class_names: dict[int, str]
    target_ids: tuple[int, ...]
    centres: dict[int, tuple[float, float, float]]
    prompts: tuple[str, ...] = ()
    occlusions: dict[int, float] = field(default_factory=dict)
    visible_centres: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    prisms: dict[int, Prism] = field(default_factory=dict)
    k: np.ndarray | None = None


@dataclass
class FramePrediction:
    """What the model said.

    label_image: uint16 [H,W], 0 = background, value = predicted instance id.
    instances: (id, label, score) per predicted instance.
    points: (instance id, u, v, xyz or None) per labelled point; (u, v) = (column, row) pixel, xyz in
        the camera optical frame, metres.
    objects: the 3D measurement of each instance that has one (Object3D.instance_id = its id); empty: no 3D.
    """

    label_image: np.ndarray
    instances: list[tuple[int, str, float]]
    points: list[tuple[int, int, int, tuple[float, float, float] | None]]
    objects: list[Object3D] = field(default_factory=list)


def class_split(name: str | None) -> str:
    """ "seen" / "unseen" for a vocabulary class, "other" for anything else (open phrase, unknown)."""
    if name is None:
        return "other"
    try:
        vocabulary.class_index(name)
    except KeyError:
        return "other"
    return "unseen" if vocabulary.is_unseen(name) else "seen"


def _overlaps(
    pred: np.ndarray, truth: np.ndarray, pred_ids: list[int], true_ids: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections int64 [P,T] between the given predicted and true ids, and their areas [P], [T].

    One joint histogram over compact indices (0 = any other value) instead of P x T mask comparisons.
    """

    def compact(image: np.ndarray, ids: list[int]) -> np.ndarray:
        table = np.zeros(max(int(image.max(initial=0)), *ids, 0) + 1, dtype=np.int64)
        table[ids] = np.arange(1, len(ids) + 1)
        return table[image]

    p, t = compact(pred, pred_ids), compact(truth, true_ids)
    joint = np.bincount((p * (len(true_ids) + 1) + t).ravel(), minlength=(len(pred_ids) + 1) * (len(true_ids) + 1))
    joint = joint.reshape(len(pred_ids) + 1, len(true_ids) + 1)
    return joint[1:, 1:], joint[1:].sum(1), joint[:, 1:].sum(0)


def _greedy_match(iou: np.ndarray, threshold: float) -> dict[int, int]:
    """{pred row: true column} one-to-one, by decreasing IoU, pairs with IoU >= threshold."""
    pairs = np.argwhere(iou >= threshold)
    order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_p, used_t, match = set(), set(), {}
    for p, t in pairs[order]:
        if p not in used_p and t not in used_t:
            used_p.add(p)
            used_t.add(t)
            match[int(p)] = int(t)
    return match


def instruction_frame_metrics(pred: FramePrediction, truth: FrameTruth, iou_threshold: float = 0.5) -> dict:
    """JSON-able record of one frame.

    Keys: tp, fp, fn; targets: per target object {id, class, split, area, occlusion (None if unknown),
    best_iou (max IoU with any predicted instance, 0 when none overlaps), matched (bool)}; predictions:
    per predicted instance {id, label, split, score, matched_target (id or None)}; points_inside /
    points_total (points of matched instances, and how many lie in the matched target's true mask);
    errors_3d: metres, per matched instance point with an xyz and a known target centre; per target the
    errors3d.measurement_errors of its matched instance's 3D measurement (centroid_error_m, size_error_m,
    normal_error_deg, normal_face; None without a match, a measurement or the truth); prompts.
    Targets with no visible pixel cannot be segmented and are left out (listed in invisible_targets).
    Unmatched predictions are false positives whether they cover a non-target object or nothing; their
    record says which ("fp_kind", one of FALSE_POSITIVE_KINDS; None for matched ones).
    """
    if pred.label_image.shape != truth.instance_image.shape:
        raise ValueError(f"label image {pred.label_image.shape} != instance image {truth.instance_image.shape}")
    pred_ids = [int(i) for i, _, _ in pred.instances]
    target_ids = sorted({int(i) for i in truth.target_ids})
    # One histogram against every object in view: the targets' IoU and the false positives' kinds need both.
    object_ids = [int(i) for i in np.unique(truth.instance_image) if i != 0]
    inter, pred_area, object_area = _overlaps(pred.label_image, truth.instance_image, pred_ids, object_ids)
    column = {oid: c for c, oid in enumerate(object_ids)}
    targets_vis = [t for t in target_ids if t in column]
    cols = [column[t] for t in targets_vis]
    areas = object_area[cols]  # [T]
    iou = inter[:, cols] / np.maximum(pred_area[:, None] + areas[None, :] - inter[:, cols], 1)  # [P,T]
    match = _greedy_match(iou, iou_threshold)
    target_of_pred = {pred_ids[p]: targets_vis[t] for p, t in match.items()}
    matched_targets = set(target_of_pred.values())

    # Points of matched instances, credited to their target (so seen/unseen splits stay exact).
    height, width = truth.instance_image.shape
    per_target = {tid: [0, 0, []] for tid in targets_vis}  # inside, total, 3D errors
    for pid, u, v, xyz in pred.points:
        tid = target_of_pred.get(int(pid))
        if tid is None:
            continue
        acc = per_target[tid]
        acc[1] += 1
        acc[0] += int(0 <= u < width and 0 <= v < height and int(truth.instance_image[v, u]) == tid)
        centre = truth.centres.get(tid)
        if xyz is not None and centre is not None and np.all(np.isfinite(xyz)):
            acc[2].append(float(np.linalg.norm(np.subtract(xyz, centre))))

    pred_of_target = {tid: pid for pid, tid in target_of_pred.items()}
    measured = {o.instance_id: o for o in pred.objects}
    targets = []
    for col, tid in enumerate(targets_vis):
        name = truth.class_names.get(tid)
        occlusion = truth.occlusions.get(tid)
        inside, total, errors = per_target[tid]
        targets.append(
            {
                "id": tid,
                "class": name,
                "split": class_split(name),
                "area": int(areas[col]),
                "occlusion": None if occlusion is None else float(occlusion),
                "best_iou": float(iou[:, col].max(initial=0.0)),
                "matched": tid in matched_targets,
                "points_inside": inside,
                "points_total": total,
                "errors_3d": errors,
                **_object_errors(measured.get(pred_of_target.get(tid)), tid, truth),
            }
        )
    unmatched = [row for row, p in enumerate(pred_ids) if p not in target_of_pred]
    kinds = _false_positive_kinds(
        [pred_ids[row] for row in unmatched],
        inter[unmatched],
        pred_area[unmatched],
        object_area,
        object_ids,
        set(targets_vis),
        matched_targets,
        iou_threshold,
    )
    predictions = [
        {
            "id": int(i),
            "label": str(label),
            "split": class_split(str(label)),
            "score": float(score),
            "matched_target": target_of_pred.get(int(i)),
            "fp_kind": kinds.get(int(i)),
        }
        for i, label, score in pred.instances
    ]

    tp = len(match)
    return {
        "tp": tp,
        "fp": len(pred_ids) - tp,
        "fn": len(targets_vis) - tp,
        "targets": targets,
        "predictions": predictions,
        "invisible_targets": [t for t in target_ids if t not in column],
        "points_inside": sum(t["points_inside"] for t in targets),
        "points_total": sum(t["points_total"] for t in targets),
        "errors_3d": [e for t in targets for e in t["errors_3d"]],
        "prompts": list(truth.prompts),
    }


def _false_positive_kinds(
    pred_ids: list[int],
    inter: np.ndarray,
    pred_area: np.ndarray,
    object_area: np.ndarray,
    object_ids: list[int],
    target_ids: set[int],
    matched_targets: set[int],
    iou_threshold: float = 0.5,
) -> dict[int, str]:
    """{predicted id: kind} for the given (unmatched) predictions, by the object holding most of its pixels
    (FALSE_POSITIVE_KINDS): "background" unless that object holds at least DOMINANT_SHARE of them.

    inter int64 [P,O]: their pixels on each object of object_ids; pred_area [P]; object_area [O].
    """
    kinds = {}
    for row, pid in enumerate(pred_ids):
        best = int(np.argmax(inter[row])) if object_ids else 0
        if not object_ids or inter[row, best] < DOMINANT_SHARE * max(pred_area[row], 1):
            kinds[pid] = "background"
        elif object_ids[best] in target_ids:
            kinds[pid] = "duplicate" if object_ids[best] in matched_targets else "poor_mask"
        else:
            union = pred_area[row] + object_area[best] - inter[row, best]
            kinds[pid] = "other_object" if inter[row, best] >= iou_threshold * union else "other_part"
    return kinds


def _object_errors(estimate: Object3D | None, target_id: int, truth: FrameTruth) -> dict:
    """errors3d.measurement_errors of a target's matched measurement (None: no match or no measurement)."""
    if estimate is None:
        return measurement_errors(None, None, None, None, box_whole=False, normal_on_object=False)
    mask = truth.instance_image == target_id
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    u, v = estimate.normal_pixel
    return measurement_errors(
        estimate,
        truth.visible_centres.get(target_id),
        truth.prisms.get(target_id),
        truth.k,
        box_whole=box_comparable(
            truth.occlusions.get(target_id),
            (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1),
            (width, height),
        ),
        normal_on_object=0 <= u < width and 0 <= v < height and bool(mask[v, u]),
    )


def _prf(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall, F1 (None where undefined: nothing predicted / nothing to find)."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _distribution(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "median": None, "mean": None, "p90": None}
    a = np.asarray(values, dtype=np.float64)
    return {
        "count": int(a.size),
        "median": float(np.median(a)),
        "mean": float(a.mean()),
        "p90": float(np.percentile(a, 90)),
    }


def summarise_targets(targets: list[dict], predictions: list[dict]) -> dict:
    """Summary (see aggregate_instruction_metrics) of pooled target and prediction records of any subset
    of frames or targets (difficulty bins pass the predictions of their targets' frames or none)."""
    tp = sum(t["matched"] for t in targets)
    out = _prf(tp, sum(p["matched_target"] is None for p in predictions), len(targets) - tp)
    out["targets"] = len(targets)
    # Records written before the kinds were recorded have no "fp_kind": they count as "unknown".
    kinds = [p.get("fp_kind") or "unknown" for p in predictions if p["matched_target"] is None]
    out["false_positives"] = {k: kinds.count(k) for k in (*FALSE_POSITIVE_KINDS, "unknown") if k in kinds}
    out["mean_target_iou"] = float(np.mean([t["best_iou"] for t in targets])) if targets else None
    inside, total = sum(t["points_inside"] for t in targets), sum(t["points_total"] for t in targets)
    out["points_inside_share"] = inside / total if total else None
    out["points_total"] = total
    out["error_3d_m"] = _distribution([e for t in targets for e in t["errors_3d"]])
    return out


def aggregate_instruction_metrics(records: list[dict]) -> dict:
    """Pool records of instruction_frame_metrics over frames (micro-averaged: counts are summed).

    Returns {"all": summary, "seen": ..., "unseen": ..., "other": ..., "frames": n, "frames_without_targets",
    "false_alarm_frames"} where a summary has precision / recall / f1 (IoU 0.5 unless the records used
    another threshold), tp / fp / fn, mean_target_iou (mean best IoU over targets), points_inside_share,
    error_3d_m {count, median, mean, p90}, false_positives {kind: count of unmatched predictions}. In a
    split, targets count by their true class and false positives by their predicted label, so seen
    precision is about predictions labelled with seen classes.
    false_alarm_frames: frames with nothing to find where something was predicted.
    """
    targets = [t for r in records for t in r["targets"]]
    predictions = [p for r in records for p in r["predictions"]]
    out = {
        s: summarise_targets(
            [t for t in targets if s == "all" or t["split"] == s],
            [p for p in predictions if s == "all" or p["split"] == s],
        )
        for s in ("all", *SPLITS)
    }
    empty = [r for r in records if not r["targets"]]
    out["frames"] = len(records)
    out["frames_without_targets"] = len(empty)
    out["false_alarm_frames"] = sum(1 for r in empty if r["predictions"])
    return out
