"""Sine positional encoding of a feature map (DETR / Mask2Former / FC-CLIP convention)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """Fixed 2-D sine-cosine encoding, normalised to [0, 2*pi] over the map (no padding mask).

    Channel layout of the output (2 * num_pos_feats channels): the y encoding first, then x; each is
    [sin f0, cos f0, sin f1, cos f1, ...] with f_k = temperature ** (2 * floor(k / 2) / num_pos_feats).
    """

    def __init__(
        self,
        num_pos_feats: int,
        temperature: float = 10000.0,
        normalize: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C, H, W] (only its shape and device are used) -> float32 [B, 2 * num_pos_feats, H, W]."""
        b, _, h, w = x.shape
        # Positions 1..H and 1..W, as the cumulative sum of an all-valid mask would give them.
        y = torch.arange(1, h + 1, dtype=torch.float32, device=x.device)
        xs = torch.arange(1, w + 1, dtype=torch.float32, device=x.device)
        if self.normalize:
            eps = 1e-6
            y = y / (h + eps) * self.scale
            xs = xs / (w + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_y = _interleave_sin_cos(y[:, None] / dim_t)  # [H, F]
        pos_x = _interleave_sin_cos(xs[:, None] / dim_t)  # [W, F]
        pos = torch.cat((pos_y[:, None, :].expand(h, w, -1), pos_x[None, :, :].expand(h, w, -1)), dim=-1)  # [H, W, 2F]
        return pos.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1)


def _interleave_sin_cos(t: Tensor) -> Tensor:
    """[N, F] angles -> [N, F] with sin on even and cos on odd channels."""
    return torch.stack((t[:, 0::2].sin(), t[:, 1::2].cos()), dim=2).flatten(1)
