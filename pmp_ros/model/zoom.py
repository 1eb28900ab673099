"""A second, zoomed look at small candidates of the prompted classes (issue #24, small and occluded targets).

At the inference size a small object is a few pixels: a 14x14 px object of a 320x240 frame covers 3x3
cells of the stride-4 masks and less than one cell of the CLIP tower's stride 32. The first look still
proposes many of them, with a low score or a coarse mask. The zoomed look cuts a window around each such
candidate from the input image (at its own resolution), runs the model on those windows as one batch at
the inference size with the same prompts, and merges the windows' instances back into the frame.

Pure tensor functions; Predictor.zoom (model/inference.py) runs the forward pass. Settings: the zoom_*
fields of InferenceConfig.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pmp_ros.model.config import InferenceConfig

Window = tuple[int, int, int, int]  # (top, left, bottom, right) in input-image pixels, bottom/right exclusive


@dataclass(frozen=True)
class Looks:
    """Instances of one image in full-frame pixels: masks bool [N,H,W], scores float32 [N], labels int64 [N]
    (class index: prompts first), embeddings float32 [N,D] or None."""

    masks: Tensor
    scores: Tensor
    labels: Tensor
    embeddings: Tensor | None

    def select(self, index: Tensor) -> Looks:
        """The instances at index (int64 [M] or bool [N])."""
        return Looks(
            self.masks[index],
            self.scores[index],
            self.labels[index],
            None if self.embeddings is None else self.embeddings[index],
        )

    @staticmethod
    def cat(parts: list[Looks]) -> Looks:
        return Looks(
            torch.cat([p.masks for p in parts]),
            torch.cat([p.scores for p in parts]),
            torch.cat([p.labels for p in parts]),
            None if parts[0].embeddings is None else torch.cat([p.embeddings for p in parts]),
        )


def zoom_windows(
    scores: Tensor, mask_logits: Tensor, image_size: tuple[int, int], cfg: InferenceConfig
) -> list[Window]:
    """The windows of the zoomed look for one image, at most cfg.zoom_crops, best candidate first.

    scores: [Q] (instance_scores: -1 for a query whose class is not a prompt); mask_logits: [Q,h,w] over
    the whole image; image_size: (H, W) of the input image. Candidates: score >= zoom_score_floor and a
    non-empty binarised mask covering at most zoom_max_area of the image, highest score first. A candidate
    whose box centre lies in a window already chosen is covered by it and gets none of its own (queries
    often propose the same object twice). Each window is centred on its candidate's box, zoom_context
    times its longer side (at least zoom_min_window of the image's height), with the crops'
    aspect (InferenceConfig.zoom_input_size), shifted to lie inside the image.
    """
    if cfg.zoom_crops == 0 or scores.numel() == 0:
        return []
    height, width = image_size
    grid_h, grid_w = mask_logits.shape[-2:]
    masks = mask_logits.float().sigmoid() > cfg.mask_threshold
    area = masks.flatten(1).float().mean(1)
    candidate = (scores >= cfg.zoom_score_floor) & (area > 0) & (area <= cfg.zoom_max_area)
    if not bool(candidate.any()):
        return []
    order = torch.argsort(
        torch.where(candidate, scores.float(), torch.full_like(scores.float(), -2.0)), descending=True
    )
    order = order[: int(candidate.sum())]
    rows, cols = masks[order].any(2), masks[order].any(1)  # [M,h], [M,w]
    row_index = torch.arange(grid_h, device=masks.device)
    col_index = torch.arange(grid_w, device=masks.device)
    big_h, big_w = grid_h + 1, grid_w + 1
    y0 = torch.where(rows, row_index, big_h).amin(1)
    y1 = torch.where(rows, row_index, -1).amax(1) + 1
    x0 = torch.where(cols, col_index, big_w).amin(1)
    x1 = torch.where(cols, col_index, -1).amax(1) + 1
    # Grid cell r covers image rows [r H/h, (r+1) H/h): the boxes in image pixels, on the host once.
    boxes = (
        torch.stack([y0 * height / grid_h, x0 * width / grid_w, y1 * height / grid_h, x1 * width / grid_w], 1)
    ).tolist()
    crop_h, crop_w = cfg.zoom_input_size()
    aspect = crop_w / crop_h  # the crops keep their aspect when resized
    windows: list[Window] = []
    for top, left, bottom, right in boxes:
        cy, cx = (top + bottom) / 2, (left + right) / 2
        if any(t <= cy < b and x0 <= cx < x1 for t, x0, b, x1 in windows):
            continue
        side = max(cfg.zoom_context * max(bottom - top, (right - left) / aspect), cfg.zoom_min_window * height)
        win_h = min(height, max(1, round(side)))
        win_w = min(width, max(1, round(side * aspect)))
        y = min(max(round(cy - win_h / 2), 0), height - win_h)
        x = min(max(round(cx - win_w / 2), 0), width - win_w)
        windows.append((y, x, y + win_h, x + win_w))
        if len(windows) == cfg.zoom_crops:
            break
    return windows


def paste_window(label: Tensor, ids: Tensor, window: Window, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The kept instances of a window's label image as full-frame masks: (masks bool [M,H,W], index int64
    [M] into ids). label: int [h,w] of the window (h, w = its size in the image); ids: int [N], 0 = dropped.

    An instance touching a side of the window that is not the image's border is left out: the window cut
    it, so its mask is part of an object (the first look, or another window, sees it whole)."""
    top, left, bottom, right = window
    height, width = image_size
    index = torch.nonzero(ids > 0).flatten()
    masks = label[None] == ids[index, None, None]
    cut = torch.zeros(index.numel(), dtype=torch.bool, device=label.device)
    if top > 0:
        cut |= masks[:, 0].any(1)
    if bottom < height:
        cut |= masks[:, -1].any(1)
    if left > 0:
        cut |= masks[:, :, 0].any(1)
    if right < width:
        cut |= masks[:, :, -1].any(1)
    masks, index = masks[~cut], index[~cut]
    full = torch.zeros((masks.shape[0], height, width), dtype=torch.bool, device=label.device)
    full[:, top:bottom, left:right] = masks
    return full, index


def on_candidates(zoomed: Looks, candidate_masks: Tensor, candidate_labels: Tensor, min_iou: float) -> Looks:
    """The zoomed instances that overlap a first-look candidate of their class at mask IoU >= min_iou (0:
    every one). candidate_masks: bool [M,H,W] (the candidates' binarised masks at the image's size);
    candidate_labels: int64 [M]."""
    if min_iou <= 0:
        return zoomed
    if zoomed.scores.numel() == 0 or candidate_labels.numel() == 0:
        return zoomed.select(torch.zeros(zoomed.scores.numel(), dtype=torch.bool, device=zoomed.scores.device))
    overlap = mask_iou(zoomed.masks, candidate_masks) * (zoomed.labels[:, None] == candidate_labels[None])
    return zoomed.select(overlap.amax(1) >= min_iou)


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every pair: a bool [N,H,W], b bool [M,H,W] -> float32 [N,M]."""
    a_flat, b_flat = a.flatten(1).float(), b.flatten(1).float()
    inter = a_flat @ b_flat.T
    union = a_flat.sum(1)[:, None] + b_flat.sum(1)[None] - inter
    return inter / union.clamp(min=1.0)


def merge_looks(first: Looks, zoomed: Looks, match_iou: float, max_area: int, overlap_threshold: float) -> Looks:
    """The first look's instances with the zoomed look's merged in, highest score first.

    Zoomed instances are taken best first; one matching an instance taken before it (same class, mask IoU
    >= match_iou: two windows saw the same object) is a duplicate and dropped, and so is one matching a
    first-look instance of more than max_area pixels (the first look saw that object whole; a window holds
    at most part of it). A taken one replaces every first-look instance it matches (its mask and score are
    the closer look's) or joins them as a new one, unless less than overlap_threshold of it lies outside
    the first-look instances that stay: then it is a part of one of them (a window shows objects larger
    than the model was trained on, and it often segments parts of them) and would only push it out when
    the instances are painted.
    """
    if zoomed.scores.numel() == 0:
        return first
    same_zz = (zoomed.labels[:, None] == zoomed.labels[None]) & (mask_iou(zoomed.masks, zoomed.masks) >= match_iou)
    same_fz = (first.labels[:, None] == zoomed.labels[None]) & (mask_iou(first.masks, zoomed.masks) >= match_iou)
    large = (first.masks.flatten(1).sum(1) > max_area)[:, None]
    on_large = (same_fz & large).any(0).tolist()
    same_zz, same_fz = same_zz.tolist(), same_fz.T.tolist()  # small: a host loop over the zoomed instances
    taken: list[int] = []
    replaced = [False] * first.scores.numel()
    for j in torch.argsort(zoomed.scores, descending=True).tolist():
        if on_large[j] or any(same_zz[j][k] for k in taken):
            continue
        taken.append(j)
        replaced = [r or m for r, m in zip(replaced, same_fz[j])]
    keep_first = torch.tensor([not r for r in replaced], dtype=torch.bool, device=first.scores.device)
    staying = first.select(keep_first)
    joined = zoomed.select(torch.tensor(taken, dtype=torch.long, device=zoomed.scores.device))
    covered = joined.masks & staying.masks.any(0)
    outside = 1 - covered.flatten(1).sum(1) / joined.masks.flatten(1).sum(1).clamp(min=1)
    merged = Looks.cat([staying, joined.select(outside >= overlap_threshold)])
    return merged.select(torch.argsort(merged.scores, descending=True))
