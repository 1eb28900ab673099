"""Panoptic quality (PQ, Kirillov et al., "Panoptic Segmentation", CVPR 2019) as COCO's panopticapi computes
it (its evaluation.py's pq_compute_single_core), on segment images.

Why not a library: panopticapi is not on PyPI (installed from its repository), and torchmetrics'
PanopticQuality drops a true segment from the false negatives when the prediction leaves most of it
unlabelled, where panopticapi counts it: a model that predicts nothing would lose no recognition quality,
and the node leaves every pixel without a confident instance unlabelled.

Per image: a predicted and a true segment of the same class match when their IoU exceeds 0.5 (then unique),
with the predicted pixels on unlabelled (void) truth left out of the union. Unmatched true segments are false
negatives unless they are crowd regions; unmatched predicted segments are false positives unless more than
half of them lies on void or on a crowd region of their class. Per class: PQ = sum of matched IoUs /
(TP + FP/2 + FN/2), SQ = sum IoU / TP, RQ = TP / (TP + FP/2 + FN/2); the summaries average over the classes
with any TP, FP or FN (panopticapi's "n").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def new_pq_stats() -> dict[str, dict[str, float]]:
    """Empty per-class accumulator: class name -> {"iou", "tp", "fp", "fn"}."""
    return {}


def accumulate_pq(
    stats: dict[str, dict[str, float]],
    truth: np.ndarray,
    true_classes: Sequence[str],
    true_crowd: Sequence[bool],
    pred: np.ndarray,
    pred_classes: dict[int, str],
    void: np.ndarray | None = None,
) -> None:
    """Add one image in place.

    truth: int [H,W], k > 0 = true segment k (class true_classes[k-1], crowd true_crowd[k-1]), 0 = none.
    pred: int [H,W], predicted segment id (0 = none) -> pred_classes[id].
    void: bool [H,W], the unlabelled pixels whose predictions are not judged (a panoptic json's 0 pixels);
        None = none (an instances json's 0 pixels are background, so predictions there are false positives).
    """
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in size")
    pred_ids = sorted(pred_classes)
    n_true, n_pred = len(true_classes), len(pred_ids)
    # Compact predicted ids: 0 = none, k = pred_ids[k-1]; one joint histogram gives every intersection.
    table = np.zeros(max(int(pred.max(initial=0)), *pred_ids, 0) + 1, np.int64)
    table[pred_ids] = np.arange(1, n_pred + 1)
    p = table[pred]
    t = truth.astype(np.int64)
    if void is not None:
        t = np.where(void, n_true + 1, t)  # void = one extra true index
    joint = np.bincount((p * (n_true + 2) + t).ravel(), minlength=(n_pred + 1) * (n_true + 2))
    joint = joint.reshape(n_pred + 1, n_true + 2)
    pred_area, true_area = joint.sum(1), joint.sum(0)
    on_void = joint[:, n_true + 1]

    def row(name: str) -> dict[str, float]:
        return stats.setdefault(name, {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})

    matched_pred, matched_true = set(), set()
    for i in range(1, n_pred + 1):
        name = pred_classes[pred_ids[i - 1]]
        for k in np.flatnonzero(joint[i, 1 : n_true + 1]) + 1:
            if true_crowd[k - 1] or true_classes[k - 1] != name:
                continue
            inter = joint[i, k]
            iou = inter / (pred_area[i] + true_area[k] - inter - on_void[i])
            if iou > 0.5:
                matched_pred.add(i)
                matched_true.add(int(k))
                entry = row(name)
                entry["iou"] += float(iou)
                entry["tp"] += 1
    for k in range(1, n_true + 1):
        if k not in matched_true and not true_crowd[k - 1] and true_area[k] > 0:
            row(true_classes[k - 1])["fn"] += 1
    for i in range(1, n_pred + 1):
        if i in matched_pred or pred_area[i] == 0:
            continue
        name = pred_classes[pred_ids[i - 1]]
        crowd_of_class = sum(
            joint[i, k] for k in range(1, n_true + 1) if true_crowd[k - 1] and true_classes[k - 1] == name
        )
        if (on_void[i] + crowd_of_class) / pred_area[i] <= 0.5:
            row(name)["fp"] += 1


def _summary(entries: list[dict[str, float]]) -> dict:
    counted = [e for e in entries if e["tp"] + e["fp"] + e["fn"] > 0]
    if not counted:
        return {"pq": None, "sq": None, "rq": None, "classes": 0}
    pq, sq, rq = [], [], []
    for e in counted:
        denominator = e["tp"] + 0.5 * e["fp"] + 0.5 * e["fn"]
        pq.append(e["iou"] / denominator)
        sq.append(e["iou"] / e["tp"] if e["tp"] else 0.0)
        rq.append(e["tp"] / denominator)
    return {"pq": float(np.mean(pq)), "sq": float(np.mean(sq)), "rq": float(np.mean(rq)), "classes": len(counted)}


def pq_metrics(stats: dict[str, dict[str, float]], things: set[str] | None = None) -> dict:
    """{"all", "things", "stuff": {pq, sq, rq (None when no class counts), classes}, "per_class": {name: pq}}.
    things: the countable classes (None: every class is a thing, as in an instances json)."""

    def is_thing(name: str) -> bool:
        return things is None or name in things

    out = {
        "all": _summary(list(stats.values())),
        "things": _summary([e for n, e in stats.items() if is_thing(n)]),
        "stuff": _summary([e for n, e in stats.items() if not is_thing(n)]),
    }
    out["per_class"] = {n: _summary([e])["pq"] for n, e in sorted(stats.items())}
    return out
