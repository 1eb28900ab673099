"""Light FPN pixel decoder (Mask2Former's BasePixelDecoder idea): top-down 3x3 convs, no attention.

Same interface as MSDeformAttnPixelDecoder, for CPU-sized models.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pmp_ros.model.pixel_decoder.layers import ConvNorm, c2_xavier_fill

# Top-down order: the coarsest level first; outputs at res5/res4/res3 are the decoder's three scales.
FPN_FEATURES = ("res5", "res4", "res3", "res2")


class FPNPixelDecoder(nn.Module):
    """res2..res5 -> (mask_features [B, mask_dim, H/4, W/4], [1/32, 1/16, 1/8] maps of conv_dim)."""

    def __init__(
        self,
        in_channels: dict[str, int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        side_channels: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvNorm(in_channels[n], conv_dim, 1) for n in FPN_FEATURES)
        # Side-adapter levels (side_<level>) join the CLIP level of the same stride through their own 1x1.
        self.side_names = [f"side_{n}" for n in FPN_FEATURES if f"side_{n}" in (side_channels or {})]
        self.side_convs = nn.ModuleDict({name: ConvNorm(side_channels[name], conv_dim, 1) for name in self.side_names})
        self.output_convs = nn.ModuleList(ConvNorm(conv_dim, conv_dim, 3, activation=nn.ReLU()) for _ in FPN_FEATURES)
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        c2_xavier_fill(self.mask_features)
        self.conv_dim, self.mask_dim = conv_dim, mask_dim

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        """features: res2 [B,c2,H/4,W/4] ... res5 [B,c5,H/32,W/32] (+ side_res2..side_res4 with a side
        adapter) -> (mask_features, [1/32,1/16,1/8])."""
        outs: list[Tensor] = []
        y = None
        for name, lateral, output in zip(FPN_FEATURES, self.lateral_convs, self.output_convs):
            x = lateral(features[name])
            if f"side_{name}" in self.side_convs:
                x = x + self.side_convs[f"side_{name}"](features[f"side_{name}"])
            if y is not None:
                x = x + F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            y = output(x)
            outs.append(y)
        return self.mask_features(outs[-1]), outs[:3]
