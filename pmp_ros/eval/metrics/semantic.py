"""Semantic segmentation over the full vocabulary: confusion matrix, per-class IoU, seen/unseen mIoU.

Layout: a confusion matrix int64 [C+1, C+1], rows = true class, columns = predicted class, index C =
"no object" (table, floor, or no prediction: -1 in both maps). Keeping that row/column means object
pixels predicted as nothing lower their class's IoU, and table pixels predicted as a class lower that
class's IoU. mIoU is over object classes only (the no-object entry is not a class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pmp_ros.data import vocabulary


def new_confusion(num_classes: int) -> np.ndarray:
    """Zero int64 [C+1, C+1]; the last row/column is "no object"."""
    return np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)


def accumulate_confusion(confusion: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> None:
    """Add one image in place. truth, pred: integer [H,W], class index or -1 (no object)."""
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in size")
    n = confusion.shape[0]
    t = np.where(truth < 0, n - 1, truth).astype(np.int64).ravel()
    p = np.where(pred < 0, n - 1, pred).astype(np.int64).ravel()
    confusion += np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def semantic_metrics(confusion: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """Per-class IoU and mIoU over seen, unseen and all classes (vocabulary.is_unseen decides the split).

    confusion: int [C+1, C+1] from accumulate_confusion; class_names: C names (default: the vocabulary).
    Classes with no true pixel in the evaluation set are excluded from every mean (their IoU is None and
    they are listed in "absent_classes"): a class that never occurs cannot be scored, and counting its
    false positives as IoU 0 would make mIoU depend on which classes the set happens to contain.
    hmean: harmonic mean of seen and unseen mIoU (the usual open-vocabulary summary).
    """
    names = list(vocabulary.all_classes() if class_names is None else class_names)
    if confusion.shape != (len(names) + 1, len(names) + 1):
        raise ValueError(f"confusion {confusion.shape} does not fit {len(names)} classes plus no-object")
    inter = np.diag(confusion)[:-1].astype(np.float64)
    true_px, pred_px = confusion.sum(1)[:-1], confusion.sum(0)[:-1]
    union = true_px + pred_px - inter
    per_class = {n: (float(inter[i] / union[i]) if true_px[i] > 0 else None) for i, n in enumerate(names)}
    seen = [v for n, v in per_class.items() if v is not None and not vocabulary.is_unseen(n)]
    unseen = [v for n, v in per_class.items() if v is not None and vocabulary.is_unseen(n)]
    miou_seen, miou_unseen = _mean(seen), _mean(unseen)
    hmean = None
    if miou_seen is not None and miou_unseen is not None:
        hmean = 2 * miou_seen * miou_unseen / (miou_seen + miou_unseen) if miou_seen + miou_unseen > 0 else 0.0
    total = confusion.sum()
    return {
        "miou": _mean(seen + unseen),
        "miou_seen": miou_seen,
        "miou_unseen": miou_unseen,
        "hmean": hmean,
        "classes_seen": len(seen),
        "classes_unseen": len(unseen),
        "absent_classes": [n for n, v in per_class.items() if v is None],
        "pixel_accuracy": float(np.trace(confusion) / total) if total else None,
        "per_class_iou": per_class,
    }
