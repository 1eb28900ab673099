"""Point sampling for mask losses and matching (PointRend / Mask2Former).

Comparing masks at a few thousand points instead of every pixel keeps the mask losses cheap at any
resolution; predictions (H/4) and targets (full size) are compared at the same normalised coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(inputs: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample maps at normalised points.

    Args:
        inputs: [N,C,H,W] maps.
        coords: [N,P,2] points as (x, y) in [0,1] (0 = left/top edge, 1 = right/bottom edge of the map).

    Returns:
        [N,C,P] sampled values.
    """
    grid = (2.0 * coords - 1.0).unsqueeze(2).to(inputs.dtype)  # [N,P,1,2] in grid_sample's [-1,1]
    return F.grid_sample(inputs, grid, mode="bilinear", align_corners=False).squeeze(3)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Higher where the mask logit is closest to the decision boundary (0)."""
    return -logits.abs()


@torch.no_grad()
def sample_uncertain_points(
    logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
) -> torch.Tensor:
    """Choose points where the predicted mask is uncertain, plus uniformly random ones.

    Draws ``num_points * oversample_ratio`` random candidates, keeps the ``importance_sample_ratio`` share
    of ``num_points`` with the highest uncertainty, and fills the rest with fresh uniform points, so the
    loss focuses on boundaries without ignoring the rest of the image.

    Args:
        logits: [N,1,H,W] mask logits.

    Returns:
        [N,num_points,2] coordinates (x, y) in [0,1].
    """
    if oversample_ratio < 1 or not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"need oversample_ratio >= 1 and 0 <= importance_sample_ratio <= 1, got {oversample_ratio}, "
            f"{importance_sample_ratio}"
        )
    n = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    num_uncertain = int(num_points * importance_sample_ratio)
    candidates = torch.rand(n, num_candidates, 2, device=logits.device)
    scores = uncertainty(point_sample(logits, candidates))[:, 0]  # [N,num_candidates]
    top = scores.topk(num_uncertain, dim=1).indices  # [N,num_uncertain]
    chosen = torch.gather(candidates, 1, top[..., None].expand(-1, -1, 2))
    uniform = torch.rand(n, num_points - num_uncertain, 2, device=logits.device)
    return torch.cat([chosen, uniform], dim=1)
