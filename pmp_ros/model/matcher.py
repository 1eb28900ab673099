"""HungarianMatcher: one-to-one assignment of predicted masks to ground-truth masks (DETR / Mask2Former).

The cost of pairing query q with target t is a weighted sum of (minus) the predicted probability of t's
class, the sigmoid cross-entropy between the two masks and their dice distance; both mask terms are
evaluated at the same random points for predictions and targets. scipy's linear_sum_assignment then finds
the assignment of minimum total cost per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from pmp_ros.model.point_sampling import point_sample


def pairwise_sigmoid_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of every prediction against every target.

    Args:
        logits: [Q,P] mask logits at P points.
        targets: [N,P] target values in [0,1] at the same points.

    Returns:
        [Q,N] costs.
    """
    # BCE(x, t) = t * softplus(-x) + (1 - t) * softplus(x): both terms are matrix products over points.
    pos = F.softplus(-logits)
    neg = F.softplus(logits)
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice distance (1 - soft dice, smoothed by 1) of every prediction against every target: [Q,P], [N,P] -> [Q,N]."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher(nn.Module):
    """Args: weights of the class, mask (sigmoid CE) and dice costs; points sampled per image."""

    def __init__(
        self, cost_class: float = 1.0, cost_mask: float = 1.0, cost_dice: float = 1.0, num_points: int = 12544
    ):
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrices(self, outputs: dict, targets: list[dict]) -> list[torch.Tensor]:
        """Per image, the [Q,N_b] matching cost (float32, on the predictions' device).

        Args:
            outputs: ``pred_logits`` [B,Q,C+1], ``pred_masks`` [B,Q,h,w] (logits).
            targets: per image ``labels`` int64 [N_b], ``masks`` bool/float [N_b,H,W] (any resolution).
        """
        logits = outputs["pred_logits"].float()
        pred_masks = outputs["pred_masks"].float()
        costs = []
        # Reduced-precision matmuls would blur close costs and change the assignment.
        with torch.autocast(pred_masks.device.type, enabled=False):
            for b, target in enumerate(targets):
                costs.append(self._image_cost(logits[b], pred_masks[b], target))
        return costs

    def _image_cost(self, logits: torch.Tensor, pred_masks: torch.Tensor, target: dict) -> torch.Tensor:
        """logits [Q,C+1], pred_masks [Q,h,w] float32, target as in cost_matrices -> cost [Q,N]."""
        labels = target["labels"].to(logits.device)
        if len(labels) == 0:
            return logits.new_zeros(logits.shape[0], 0)
        class_cost = -logits.softmax(-1)[:, labels]  # [Q,N]
        # One set of points per image, shared by all queries and targets, so costs are comparable.
        coords = torch.rand(1, self.num_points, 2, device=pred_masks.device)
        tgt_masks = target["masks"].to(pred_masks)
        tgt_points = point_sample(tgt_masks[:, None], coords.expand(len(labels), -1, -1))[:, 0]  # [N,P]
        pred_points = point_sample(pred_masks[:, None], coords.expand(pred_masks.shape[0], -1, -1))[:, 0]  # [Q,P]
        return (
            self.cost_class * class_cost
            + self.cost_mask * pairwise_sigmoid_ce(pred_points, tgt_points)
            + self.cost_dice * pairwise_dice(pred_points, tgt_points)
        )

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Returns per image (pred_idx int64 [M], tgt_idx int64 [M]), M = min(Q, N_b), pred_idx ascending."""
        indices = []
        for cost in self.cost_matrices(outputs, targets):
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_mask={self.cost_mask}, cost_dice={self.cost_dice}, "
            f"num_points={self.num_points}"
        )
