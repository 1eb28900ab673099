"""Proposal ranks and recall@K with hand-built masks."""

import numpy as np
import torch

from pmp_ros.eval.metrics.proposals import NOT_COVERED, binarise_queries, covering_ranks, recall_at_k


def test_covering_ranks_follow_the_target_scores():
    target = np.zeros((2, 8, 8), bool)
    target[0, :4, :4] = True
    target[1, 4:, 4:] = True
    proposals = np.zeros((3, 8, 8), bool)
    proposals[0, :4, :2] = True  # IoU 0.5 with target 0: covers at the default threshold
    proposals[1, :4, :4] = True  # exact target 0
    proposals[2, 6:, 6:] = True  # IoU 0.25 with target 1: never covers it
    scores = np.array(
        [
            [0.1, 0.9, 0.5],  # target 0 ranks queries 1, 2, 0: first cover at rank 0
            [0.9, 0.1, 0.5],
        ]
    )
    assert covering_ranks(proposals, target, scores).tolist() == [0, NOT_COVERED]
    scores[0] = [0.9, 0.1, 0.5]  # now query 0 (IoU 0.5) comes first
    assert covering_ranks(proposals, target, scores, iou_threshold=0.6).tolist() == [2, NOT_COVERED]


def test_recall_at_k():
    assert recall_at_k([0, 2, NOT_COVERED, 4], (1, 3, 5)) == {"1": 0.25, "3": 0.5, "5": 0.75}
    assert recall_at_k([], (1,)) == {"1": None}


def test_binarise_queries_upsamples_at_logit_zero():
    logits = torch.full((1, 2, 2), -1.0)
    logits[0, 0, 0] = 1.0
    masks = binarise_queries(logits, (4, 4))
    assert masks.shape == (1, 4, 4) and masks.dtype == bool
    assert masks[0, 0, 0] and not masks[0, 3, 3]
