"""Proposal recall: does the mask generator propose a target at all, before classification decides?

For every target object, the segmenter's raw queries are ranked by the ensemble probability of the
target's class; the target's rank is the position of the first query whose binarised mask covers it
(IoU >= threshold). recall@K = share of targets with rank < K. Recall at K = all queries measures the
masks alone; the gap to recall@1 is what classification loses.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

NOT_COVERED = -1


def binarise_queries(mask_logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """bool [Q,H,W] on the host: mask logits [Q,h,w] upsampled bilinearly to size (H, W), then > 0
    (sigmoid 0.5, the same binarisation as the instance post-processing at its default threshold)."""
    up = F.interpolate(mask_logits.float()[None], size=size, mode="bilinear", align_corners=False)[0]
    return (up > 0).cpu().numpy()


def covering_ranks(
    proposals: np.ndarray, target_masks: np.ndarray, target_scores: np.ndarray, iou_threshold: float = 0.5
) -> np.ndarray:
    """int64 [T]: per target, the 0-based rank (by decreasing score) of the first proposal with
    IoU >= iou_threshold, or NOT_COVERED.

    proposals: bool [Q,H,W]; target_masks: bool [T,H,W]; target_scores: float [T,Q], each target's
    ranking of the proposals (e.g. p(target class | query)).
    """
    if len(target_masks) == 0:
        return np.zeros(0, dtype=np.int64)
    p = proposals.reshape(len(proposals), -1).astype(np.float32)
    t = target_masks.reshape(len(target_masks), -1).astype(np.float32)
    inter = t @ p.T  # [T,Q]; float32 counts are exact below 2**24 pixels
    union = t.sum(1)[:, None] + p.sum(1)[None, :] - inter
    covers = inter >= iou_threshold * np.maximum(union, 1)
    ranks = np.full(len(t), NOT_COVERED, dtype=np.int64)
    for i in range(len(t)):
        order = np.argsort(-target_scores[i], kind="stable")
        hits = np.flatnonzero(covers[i, order])
        if hits.size:
            ranks[i] = hits[0]
    return ranks


def recall_at_k(ranks: Iterable[int], ks: Iterable[int]) -> dict[str, float | None]:
    """{str(K): share of ranks in [0, K)} (None without targets). Keys keep the order of ks."""
    r = np.fromiter(ranks, dtype=np.int64)
    return {str(k): (float(((r >= 0) & (r < k)).mean()) if r.size else None) for k in ks}
