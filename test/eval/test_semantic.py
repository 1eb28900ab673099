"""Semantic confusion and IoU on hand-built maps."""

import numpy as np
import pytest

from pmp_ros.data import vocabulary
from pmp_ros.eval.metrics.semantic import accumulate_confusion, new_confusion, semantic_metrics


def test_iou_from_hand_built_maps():
    seen, unseen = vocabulary.class_index("red star"), vocabulary.class_index("red circle")
    truth = np.full((4, 4), -1)
    truth[0, :] = seen  # 4 px
    truth[1, :] = unseen  # 4 px
    pred = truth.copy()
    pred[0, 0] = -1  # seen: 3 / (4 + 3 - 3) = 0.75
    pred[3, 0] = seen  # ... and one table pixel called seen: 3 / (4 + 4 - 3) = 0.6
    pred[1, :2] = seen  # unseen: 2 / 4 = 0.5; seen: 3 / (4 + 6 - 3) = 3/7
    confusion = new_confusion(len(vocabulary.all_classes()))
    accumulate_confusion(confusion, truth, pred)
    m = semantic_metrics(confusion)
    assert m["per_class_iou"]["red star"] == pytest.approx(3 / 7)
    assert m["per_class_iou"]["red circle"] == pytest.approx(0.5)
    assert m["miou_seen"] == pytest.approx(3 / 7) and m["miou_unseen"] == pytest.approx(0.5)
    assert m["hmean"] == pytest.approx(2 * (3 / 7) * 0.5 / (3 / 7 + 0.5))
    assert m["miou"] == pytest.approx((3 / 7 + 0.5) / 2)
    assert m["classes_seen"] == 1 and m["classes_unseen"] == 1
    assert len(m["absent_classes"]) == 98 and m["per_class_iou"]["blue star"] is None


def test_accumulates_over_images_and_checks_shapes():
    confusion = new_confusion(3)
    truth = np.array([[0, 1], [2, -1]])
    accumulate_confusion(confusion, truth, truth)
    accumulate_confusion(confusion, truth, truth)
    assert np.array_equal(np.diag(confusion), [2, 2, 2, 2]) and confusion.sum() == 8
    with pytest.raises(ValueError):
        accumulate_confusion(confusion, truth, truth[:1])
    with pytest.raises(ValueError):
        semantic_metrics(confusion)  # 3 classes, but the default names are the 100 vocabulary classes
    assert semantic_metrics(confusion, ["red star", "red circle", "blue star"])["miou"] == 1.0
