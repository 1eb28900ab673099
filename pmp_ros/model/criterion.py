"""SetCriterion: Mask2Former's set prediction loss.

After Hungarian matching, every query is trained to predict its matched target's class or, unmatched,
the void class (down-weighted by ``eos_coef``); matched queries' masks get a sigmoid cross-entropy and a
dice loss at points sampled where the prediction is uncertain. With deep supervision the same losses are
applied to every earlier decoder prediction (``aux_outputs``), each with its own matching.

A target may carry a loss weight (``weights``, default 1): its query's cross-entropy and its mask losses
are scaled by it, and the mask losses are normalised by the summed weights instead of the target count.
``class_weights``, where given, replace ``weights`` in the cross-entropy only. With all weights 1 this is
exactly Mask2Former's loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pmp_ros.model.config import LossConfig
from pmp_ros.model.matcher import HungarianMatcher
from pmp_ros.model.point_sampling import point_sample, sample_uncertain_points


def sigmoid_ce_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_masks: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """logits, targets [M,P], weights [M] or None -> scalar: per-mask mean BCE over points, weighted, summed
    over masks, / num_masks."""
    per_mask = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)
    return (per_mask if weights is None else per_mask * weights).sum() / num_masks


def dice_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_masks: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """logits, targets [M,P], weights [M] or None -> scalar: per-mask 1 - soft dice (smoothed by 1),
    weighted, summed, / num_masks."""
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    per_mask = 1 - (numerator + 1) / (denominator + 1)
    return (per_mask if weights is None else per_mask * weights).sum() / num_masks


class SetCriterion(nn.Module):
    """Args:
    num_classes: C, or None when the vocabulary changes from batch to batch (open vocabulary): the
        void class is then always the last column of ``pred_logits``.
    matcher: assigns queries to targets.
    weight_dict: loss weights by base name (``loss_ce``, ``loss_mask``, ``loss_dice``); auxiliary
        losses ``<name>_<i>`` use their base name's weight.
    eos_coef: cross-entropy weight of the void (no object) class.
    losses: which of "labels", "masks" to compute.
    num_points, oversample_ratio, importance_sample_ratio: point sampling for the mask losses.
    deep_supervision: also apply the losses to ``aux_outputs``.
    """

    def __init__(
        self,
        num_classes: int | None,
        matcher: HungarianMatcher,
        weight_dict: dict[str, float],
        eos_coef: float,
        losses: Sequence[str] = ("labels", "masks"),
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        deep_supervision: bool = True,
    ):
        super().__init__()
        unknown = sorted(set(losses) - {"labels", "masks"})
        if unknown:
            raise ValueError(f"unknown losses {unknown}; known: ['labels', 'masks']")
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.eos_coef = eos_coef
        self.losses = tuple(losses)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.deep_supervision = deep_supervision

    @classmethod
    def from_config(cls, cfg: LossConfig, num_classes: int | None = None) -> SetCriterion:
        """Mask2Former's setup: matching costs equal the loss weights."""
        matcher = HungarianMatcher(cfg.class_weight, cfg.mask_weight, cfg.dice_weight, cfg.num_points)
        weights = {"loss_ce": cfg.class_weight, "loss_mask": cfg.mask_weight, "loss_dice": cfg.dice_weight}
        return cls(
            num_classes,
            matcher,
            weights,
            cfg.no_object_weight,
            ("labels", "masks"),
            cfg.num_points,
            cfg.oversample_ratio,
            cfg.importance_sample_ratio,
            cfg.deep_supervision,
        )

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Unweighted losses: ``loss_ce``, ``loss_mask``, ``loss_dice`` and ``<name>_<i>`` per aux output.

        Args:
            outputs: ``pred_logits`` [B,Q,C+1], ``pred_masks`` [B,Q,h,w], optional ``aux_outputs`` (list of
                dicts with the same two keys).
            targets: per image ``labels`` int64 [N_b] in [0,C), ``masks`` bool/float [N_b,H,W], optional
                ``weights`` float [N_b] (loss weight of each target, default 1), optional ``class_weights``
                float [N_b] (its weight in the cross-entropy, default ``weights``).
        """
        num_classes = outputs["pred_logits"].shape[-1] - 1
        if self.num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f"pred_logits has {num_classes} classes + void, criterion expects {self.num_classes}")
        num_masks = self._num_masks(targets, outputs["pred_logits"].device)
        losses = self._losses(outputs, targets, num_masks)
        if self.deep_supervision:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                losses.update({f"{k}_{i}": v for k, v in self._losses(aux, targets, num_masks).items()})
        return losses

    def weighted_total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of losses times their weight (aux ``loss_ce_3`` weighs like ``loss_ce``)."""
        return sum(value * self.weight_dict[self._base_name(name)] for name, value in losses.items())

    def _base_name(self, name: str) -> str:
        head, _, tail = name.rpartition("_")
        return head if tail.isdigit() else name

    def _num_masks(self, targets: list[dict], device: torch.device) -> float:
        """Target masks in the batch (their summed weights), averaged over processes, so every rank normalises
        alike (at least 1)."""
        num = torch.tensor(float(sum(_weights(t).sum() for t in targets)), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num)
            num = num / dist.get_world_size()
        return max(num.item(), 1.0)

    def _losses(self, outputs: dict, targets: list[dict], num_masks: float) -> dict[str, torch.Tensor]:
        indices = self.matcher(outputs, targets)
        losses = {}
        if "labels" in self.losses:
            losses.update(self.loss_labels(outputs, targets, indices))
        if "masks" in self.losses:
            losses.update(self.loss_masks(outputs, targets, indices, num_masks))
        return losses

    def loss_labels(self, outputs: dict, targets: list[dict], indices: list) -> dict[str, torch.Tensor]:
        """Cross-entropy over C+1 classes for every query: the matched target's class, else void."""
        logits = outputs["pred_logits"].float()  # [B,Q,C+1]
        void = logits.shape[-1] - 1
        target_classes = torch.full(logits.shape[:2], void, dtype=torch.int64, device=logits.device)
        for b, (pred_idx, tgt_idx) in enumerate(indices):
            target_classes[b, pred_idx.to(logits.device)] = targets[b]["labels"][tgt_idx].to(logits.device)
        weight = torch.ones(void + 1, device=logits.device)
        weight[void] = self.eos_coef
        if not any("weights" in t or "class_weights" in t for t in targets):
            return {"loss_ce": F.cross_entropy(logits.transpose(1, 2), target_classes, weight)}
        # Same weighted mean as above (sum of w*loss / sum of w), w now also the matched target's weight.
        per_query = weight[target_classes]  # [B,Q]
        for b, (pred_idx, tgt_idx) in enumerate(indices):
            per_query[b, pred_idx.to(logits.device)] = _class_weights(targets[b])[tgt_idx].to(logits.device)
        loss = F.cross_entropy(logits.transpose(1, 2), target_classes, reduction="none")  # [B,Q]
        return {"loss_ce": (loss * per_query).sum() / per_query.sum().clamp_min(1e-6)}

    def loss_masks(
        self, outputs: dict, targets: list[dict], indices: list, num_masks: float
    ) -> dict[str, torch.Tensor]:
        """Sigmoid CE and dice between matched masks at uncertainty-sampled points."""
        pred_masks = outputs["pred_masks"]
        batch_idx = torch.cat([torch.full_like(p, b) for b, (p, _) in enumerate(indices)]).to(pred_masks.device)
        pred_idx = torch.cat([p for p, _ in indices]).to(pred_masks.device)
        matched = pred_masks[batch_idx, pred_idx].float()[:, None]  # [M,1,h,w]
        if matched.shape[0] == 0:
            # No targets in the batch: a zero that still depends on the predictions keeps DDP's graph intact.
            zero = pred_masks.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero}
        # Target masks may differ in size between images, so sample them image by image.
        coords = sample_uncertain_points(matched, self.num_points, self.oversample_ratio, self.importance_sample_ratio)
        target_points, target_weights = [], []
        start = 0
        for b, (_, tgt_idx) in enumerate(indices):
            if len(tgt_idx) == 0:
                continue
            masks = targets[b]["masks"][tgt_idx.to(targets[b]["masks"].device)].to(matched)[:, None]
            target_points.append(point_sample(masks, coords[start : start + len(tgt_idx)])[:, 0])
            target_weights.append(_weights(targets[b])[tgt_idx].to(matched))
            start += len(tgt_idx)
        target_points = torch.cat(target_points)  # [M,P]
        weights = torch.cat(target_weights) if any("weights" in t for t in targets) else None  # [M]
        pred_points = point_sample(matched, coords)[:, 0]  # [M,P]
        return {
            "loss_mask": sigmoid_ce_loss(pred_points, target_points, num_masks, weights),
            "loss_dice": dice_loss(pred_points, target_points, num_masks, weights),
        }


def _class_weights(target: dict) -> torch.Tensor:
    """A target's cross-entropy weights [N]: its ``class_weights``, else its loss weights."""
    return target["class_weights"] if "class_weights" in target else _weights(target)


def _weights(target: dict) -> torch.Tensor:
    """A target's loss weights [N]: its ``weights``, else ones."""
    if "weights" in target:
        return target["weights"]
    return torch.ones(len(target["labels"]), device=target["labels"].device)
