"""FC-CLIP's open-vocabulary classification: cosine logits against text embeddings (max over synonyms,
void appended), mask pooling, and the in-/out-of-vocabulary geometric ensemble."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pmp_ros.model.config import UNSEEN_RULES


def classification_logits(
    x: Tensor, text_classifier: Tensor, logit_scale: Tensor, num_templates: Sequence[int] | Tensor
) -> Tensor:
    """x: [B, Q, D] embeddings; text_classifier: [K+1, D] L2-normalised synonym rows then the void row;
    logit_scale: raw scalar (exp, clamped at 100, is applied here); num_templates: len C, sum K,
    consecutive synonym rows per class, or the same layout as a bool [C, K] membership tensor (True where
    synonym row k belongs to class c: an exported graph's input, where the counts are not Python ints).
    Returns [B, Q, C+1]: per class the max over its synonyms, void last.
    """
    scale = torch.clamp(logit_scale.exp(), max=100)
    logits = scale * F.normalize(x, dim=-1) @ text_classifier.T  # [B, Q, K+1]
    if isinstance(num_templates, Tensor):
        per_class = logits[..., None, :-1].masked_fill(~num_templates, float("-inf")).amax(-1)  # [B, Q, C]
        return torch.cat([per_class, logits[..., -1:]], dim=-1)
    num_templates = [int(n) for n in num_templates]
    k = sum(num_templates)
    if k != text_classifier.shape[0] - 1:
        raise ValueError(f"num_templates sums to {k}, text_classifier has {text_classifier.shape[0] - 1} rows + void")
    per_class = logits[..., :k]
    if any(n != 1 for n in num_templates):
        # Segment max over consecutive synonym columns; the index is built on the host from Python ints.
        index = torch.repeat_interleave(torch.arange(len(num_templates)), torch.tensor(num_templates))
        index = index.to(logits.device, non_blocking=True).expand(*logits.shape[:-1], k)
        per_class = logits.new_full((*logits.shape[:-1], len(num_templates)), float("-inf")).scatter_reduce(
            -1, index, per_class, reduce="amax", include_self=True
        )
    return torch.cat([per_class, logits[..., -1:]], dim=-1)


class MaskPooling(nn.Module):
    """Average of features over each mask's positive pixels (mask logit > 0); no gradient through the mask."""

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:
        """features: [B, C, H, W]; masks: [B, Q, h, w] logits (resized bilinearly to H x W if needed).
        Returns [B, Q, C]; an empty mask gives zeros."""
        if masks.shape[-2:] != features.shape[-2:]:
            masks = F.interpolate(masks, size=features.shape[-2:], mode="bilinear", align_corners=False)
        with torch.no_grad():
            binary = (masks.detach() > 0).to(features.dtype)
            weights = binary / (binary.sum(dim=(-1, -2), keepdim=True) + 1e-8)
        return torch.einsum("bchw,bqhw->bqc", features, weights)


def geometric_ensemble(
    in_vocab_logits: Tensor,
    out_vocab_logits: Tensor,
    category_overlapping_mask: Tensor,
    alpha: float,
    beta: float,
    valid: Tensor | None = None,
    unseen_rule: str = "fcclip",
) -> Tensor:
    """The in-/out-of-vocabulary ensemble. in_vocab_logits, out_vocab_logits: [B, Q, C+1] (void last);
    category_overlapping_mask: [C] (1 = class seen in training); valid: optional [B, Q] bool (the query has
    an out-of-vocabulary embedding); where False, the out-of-vocabulary classifier gets weight 0.

    unseen_rule "fcclip" (FC-CLIP): every class p_in^(1-w) p_out^w with w = alpha for seen classes, beta
    for unseen ones, one softmax over all classes. The in-vocabulary classifier was trained on seen classes
    only, so for an object of an unseen class it still gives most of its mass to a seen class of the same
    colour, and with w < 1 that seen class usually wins.
    unseen_rule "split": first seen against unseen, as groups: mass_in(group)^(1-beta) mass_out(group)^beta;
    then within the seen group p_in^(1-alpha) p_out^alpha, within the unseen group p_in^(1-beta) p_out^beta.
    beta = 1 leaves the group decision to the out-of-vocabulary classifier alone; with only seen classes
    in the vocabulary both rules give the same probabilities.
    Returns log-probabilities [B, Q, C+1] (void last).
    """
    if unseen_rule not in UNSEEN_RULES:
        raise ValueError(f"unseen_rule must be one of {UNSEEN_RULES}, got {unseen_rule!r}")
    p_in = in_vocab_logits[..., :-1].softmax(-1)  # void dropped before the softmax
    p_out = out_vocab_logits[..., :-1].softmax(-1)
    seen = category_overlapping_mask.to(device=p_in.device, dtype=p_in.dtype)
    a: Tensor | float = alpha
    b: Tensor | float = beta
    if valid is not None:
        v = valid.to(p_in.dtype).unsqueeze(-1)
        a = torch.ones_like(p_in) * alpha * v
        b = torch.ones_like(p_in) * beta * v
    void = in_vocab_logits.softmax(-1)[..., -1:]
    if unseen_rule == "fcclip":
        cls_seen = (p_in ** (1 - a) * p_out**a).log() * seen
        cls_unseen = (p_in ** (1 - b) * p_out**b).log() * (1 - seen)
        return torch.log(torch.cat([(cls_seen + cls_unseen).softmax(-1) * (1.0 - void), void], dim=-1) + 1e-8)
    tiny = torch.finfo(p_in.dtype).tiny
    log_in, log_out = p_in.clamp_min(tiny).log(), p_out.clamp_min(tiny).log()
    b_group = b[..., :1] if isinstance(b, Tensor) else b  # [B,Q,1]: the group weight is per query

    def group_log_mass(log_p: Tensor, member: Tensor) -> Tensor:  # [B,Q,1]; an empty group ~ log(0), finite
        return log_p.masked_fill(member == 0, float("-inf")).logsumexp(-1, keepdim=True).clamp_min(math.log(tiny))

    def within(weight: Tensor | float, member: Tensor) -> Tensor:  # log-probabilities inside the group
        mixed = ((1 - weight) * log_in + weight * log_out).masked_fill(member == 0, float("-inf"))
        return mixed.log_softmax(-1)

    group = torch.cat(
        [
            (1 - b_group) * group_log_mass(log_in, seen) + b_group * group_log_mass(log_out, seen),
            (1 - b_group) * group_log_mass(log_in, 1 - seen) + b_group * group_log_mass(log_out, 1 - seen),
        ],
        dim=-1,
    ).log_softmax(-1)  # [B,Q,2]: seen, unseen
    # An empty group's `within` is undefined (NaN) but never selected.
    per_class = torch.where(seen.bool(), group[..., :1] + within(a, seen), group[..., 1:] + within(b, 1 - seen))
    return torch.cat([per_class + torch.log1p(-void.clamp(max=1 - 1e-7)), void.log()], dim=-1).clamp_min(math.log(1e-8))


def fcclip_ensemble(
    pred_logits: Tensor,
    pred_masks: Tensor,
    clip_vis_dense: Tensor,
    visual_prediction,
    text_classifier: Tensor,
    clip_logit_scale: Tensor,
    num_templates: Sequence[int],
    category_overlapping_mask: Tensor,
    alpha: float = 0.4,
    beta: float = 0.8,
    on_valid_mask: bool = False,
    unseen_rule: str = "fcclip",
) -> dict[str, Tensor]:
    """Out-of-vocabulary classification from frozen CLIP features and the ensemble (FCCLIP inference).

    pred_logits [B,Q,C+1], pred_masks [B,Q,H/4,W/4] (head outputs); clip_vis_dense [B,c5,h,w];
    visual_prediction: callable [B,Q,c5] -> [B,Q,D] (ClipBackbone.visual_prediction);
    clip_logit_scale: the CLIP model's raw logit scale. Returns mask_for_pooling [B,Q,h,w],
    pooled_clip_feature [B,Q,D], out_vocab_logits [B,Q,C+1], class_log_probs [B,Q,C+1].
    """
    mask_for_pooling = F.interpolate(pred_masks, size=clip_vis_dense.shape[-2:], mode="bilinear", align_corners=False)
    pooled = visual_prediction(MaskPooling()(clip_vis_dense, mask_for_pooling))
    out_vocab = classification_logits(pooled, text_classifier, clip_logit_scale, num_templates)
    valid = (mask_for_pooling > 0).flatten(2).any(-1) if on_valid_mask else None
    log_probs = geometric_ensemble(pred_logits, out_vocab, category_overlapping_mask, alpha, beta, valid, unseen_rule)
    return {
        "mask_for_pooling": mask_for_pooling,
        "pooled_clip_feature": pooled,
        "out_vocab_logits": out_vocab,
        "class_log_probs": log_probs,
    }


def mask_crop_boxes(
    masks: Tensor, stride: int, crop_size: int, context: float = 1.2, zoom: float = 0.0, min_side: int = 16
) -> tuple[Tensor, Tensor]:
    """Square crop windows around each mask, in input pixels.

    masks: [B,Q,h,w] logits at `stride` of the input. A window is centred on the box of the mask's positive
    pixels, with side max(crop_size, context x the box's longer side): objects smaller than a crop are cut
    at native scale (as CLIP was trained on crops of the scene), larger ones are shrunk to fit. With
    zoom > 0 the side is max(min_side, zoom x the box's longer side) instead: every object fills its crop
    alike (pmp_ros/data/crops.py's zoomed windows, what a crop tower is trained on).
    Returns (boxes float [B,Q,4] as x0, y0, x1, y1; valid bool [B,Q], False for an empty mask, whose
    window is a crop at the input's origin).
    """
    positive = masks > 0
    rows, cols = positive.any(-1), positive.any(-2)  # [B,Q,h], [B,Q,w]
    valid = rows.any(-1)
    h, w = masks.shape[-2:]

    def bounds(line: Tensor, n: int) -> tuple[Tensor, Tensor]:
        index = torch.arange(n, device=line.device, dtype=torch.float32)
        first = torch.where(line, index, float(n)).amin(-1)
        last = torch.where(line, index, -1.0).amax(-1)
        return first * stride, (last + 1) * stride

    y0, y1 = bounds(rows, h)
    x0, x1 = bounds(cols, w)
    longer = torch.maximum(x1 - x0, y1 - y0)
    if zoom > 0:
        side = torch.clamp(zoom * longer, min=float(min_side))
    else:
        side = torch.clamp(context * longer, min=float(crop_size))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    boxes = torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=-1)
    fallback = torch.tensor([0.0, 0.0, float(crop_size), float(crop_size)], device=masks.device)
    return torch.where(valid[..., None], boxes, fallback), valid


def crop_images(images: Tensor, boxes: Tensor, crop_size: int) -> Tensor:
    """images [B,3,H,W], boxes [B,Q,4] (x0, y0, x1, y1 in pixels, square windows) -> crops [B*Q,3,S,S].

    A window is cut at whole pixels (its corner rounded down, its side rounded): a native-scale window is
    an exact copy, a larger one is shrunk to S x S by area averaging. Windows may leave the image: it is
    extended by replicating its edge pixels first (as the crops CLIP was pretrained on), not by zeros.
    Slicing, not roi_align: on the CPU, roi_align cost more than the CLIP tower itself.
    """
    height, width = images.shape[-2:]
    if not boxes.numel():
        return images.new_zeros(0, images.shape[1], crop_size, crop_size)
    corners = boxes[..., :2].floor()
    sides = (boxes[..., 2] - boxes[..., 0]).round().clamp(min=1)
    windows = torch.cat([corners, sides[..., None]], dim=-1).long().tolist()  # [B][Q][x, y, side], one copy
    # Pad by how far the windows leave the image (usually a few pixels), not by their coordinates.
    pad = max(0, max(max(-x, -y, x + side - width, y + side - height) for row in windows for x, y, side in row))
    pad = min(pad, 4 * max(height, width))
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate") if pad else images
    crops = []
    for index, row in enumerate(windows):
        for x, y, side in row:
            x, y = min(max(x + pad, 0), padded.shape[-1] - 1), min(max(y + pad, 0), padded.shape[-2] - 1)
            window = padded[index, :, y : y + side, x : x + side]
            if window.shape[-2:] != (crop_size, crop_size):
                window = F.interpolate(window[None], size=(crop_size, crop_size), mode="area")[0]
            crops.append(window)
    return torch.stack(crops)


def crop_images_by_resampling(images: Tensor, boxes: Tensor, crop_size: int) -> Tensor:
    """crop_images in tensor arithmetic only, for graph export (crop_images reads the windows on the host
    and slices by them, which a traced graph cannot express). Same windows (corner rounded down, side
    rounded), same area averaging and edge replication, as two matrix products per crop:
    crop = rows @ image @ cols^T, where rows [S,H] and cols [S,W] resample the window's positions.

    images [B,3,H,W], boxes [B,Q,4] (x0, y0, x1, y1 in pixels, square windows) -> crops [B*Q,3,S,S].
    """
    height, width = images.shape[-2:]
    corners = boxes[..., :2].floor()
    sides = (boxes[..., 2] - boxes[..., 0]).round().clamp(min=1)
    rows = _area_resampling(corners[..., 1], sides, crop_size, height)  # [B,Q,S,H]
    cols = _area_resampling(corners[..., 0], sides, crop_size, width)  # [B,Q,S,W]
    crops = rows[:, :, None] @ images[:, None] @ cols[:, :, None].transpose(-1, -2)  # [B,Q,3,S,S]
    return crops.flatten(0, 1)


def _area_resampling(starts: Tensor, sides: Tensor, crop_size: int, length: int) -> Tensor:
    """Area interpolation of windows [start, start + side) to crop_size cells, as a matrix over the image's
    positions: starts, sides [...] (whole pixels) -> weights [..., S, length].

    Cell i averages positions [start + floor(i side / S), start + ceil((i + 1) side / S)) (adaptive average
    pooling's cells, as F.interpolate(mode="area") cuts them); a position before the image counts as its
    first pixel, one after it as its last (replicate padding).
    """
    cells = torch.arange(crop_size, dtype=starts.dtype, device=starts.device)
    first = starts[..., None] + torch.floor(cells * sides[..., None] / crop_size)  # [..., S]
    end = starts[..., None] + torch.ceil((cells + 1) * sides[..., None] / crop_size)
    pixels = torch.arange(length, dtype=starts.dtype, device=starts.device)
    # Pixel p covers positions [p, p + 1); the first pixel also all before it, the last all after it.
    covers_from = torch.where(pixels == 0, float("-inf"), pixels)
    covers_to = torch.where(pixels == length - 1, float("inf"), pixels + 1)
    overlap = torch.minimum(end[..., None], covers_to) - torch.maximum(first[..., None], covers_from)
    return overlap.clamp(min=0) / (end - first)[..., None]


def crop_ensemble(
    pred_logits: Tensor,
    pred_masks: Tensor,
    images: Tensor,
    encode_crops,
    text_classifier: Tensor,
    clip_logit_scale: Tensor,
    num_templates: Sequence[int],
    category_overlapping_mask: Tensor,
    alpha: float,
    beta: float,
    crop_size: int,
    mask_stride: int = 4,
    max_crops: int = 0,
    unseen_rule: str = "fcclip",
    zoom: float = 0.0,
    min_side: int = 16,
) -> dict[str, Tensor]:
    """Out-of-vocabulary classification by running the CLIP image tower on a crop around each proposal
    (two-stage open-vocabulary segmentation), then FC-CLIP's geometric ensemble with the in-vocabulary
    logits.

    pred_logits [B,Q,C+1]; pred_masks [B,Q,H/4,W/4] logits of the padded input; images [B,3,H,W] the
    CLIP-normalised padded input; encode_crops: [N,3,S,S] -> [N,D] (the CLIP tower's pooled embedding).
    max_crops: crop only the K queries per image most likely to be objects (lowest in-vocabulary void
    probability); 0 = every query. zoom, min_side: the windows (mask_crop_boxes). Where a query's mask is
    empty, or it is not cropped, the CLIP classifier gets weight 0. Returns crop_boxes [B,Q,4],
    crop_embeddings [B,Q,D] (the tower's embedding of each crop, zeros where not cropped), out_vocab_logits
    [B,Q,C+1] (zeros where not cropped), class_log_probs [B,Q,C+1].
    """
    boxes, valid = mask_crop_boxes(pred_masks, mask_stride, crop_size, zoom=zoom, min_side=min_side)
    batch, queries = boxes.shape[:2]
    if 0 < max_crops < queries:
        void = pred_logits.softmax(-1)[..., -1]  # [B,Q]
        chosen = void.topk(max_crops, dim=1, largest=False).indices  # [B,K]
    else:
        chosen = torch.arange(queries, device=boxes.device).expand(batch, queries)
    picked_boxes = boxes.gather(1, chosen[..., None].expand(-1, -1, 4))
    cut_crops = crop_images_by_resampling if torch.compiler.is_exporting() else crop_images
    embeddings = encode_crops(cut_crops(images, picked_boxes, crop_size)).reshape(*chosen.shape, -1)
    picked = classification_logits(embeddings, text_classifier, clip_logit_scale, num_templates)  # [B,K,C+1]
    out_vocab = picked.new_zeros(batch, queries, picked.shape[-1]).scatter(
        1, chosen[..., None].expand(-1, -1, picked.shape[-1]), picked
    )
    crop_embeddings = embeddings.new_zeros(batch, queries, embeddings.shape[-1]).scatter(
        1, chosen[..., None].expand(-1, -1, embeddings.shape[-1]), embeddings
    )
    cropped = torch.zeros_like(valid).scatter(1, chosen, True)
    log_probs = geometric_ensemble(
        pred_logits, out_vocab, category_overlapping_mask, alpha, beta, valid & cropped, unseen_rule
    )
    return {
        "crop_boxes": boxes,
        "crop_embeddings": crop_embeddings,
        "out_vocab_logits": out_vocab,
        "class_log_probs": log_probs,
    }
