"""A light trainable image branch beside the frozen CLIP tower (the idea of SAN's side adapter, CVPR 2023).

The frozen tower was trained to classify object crops; its dense features are coarse for masks. The side
adapter gives the pixel decoder features learned for segmentation at strides 4, 8 and 16, from the same
normalised input image, at a small fraction of the tower's cost. The FPN pixel decoder adds them to the
CLIP levels of the same stride (pmp_ros/model/pixel_decoder/fpn.py).
"""

from __future__ import annotations

from torch import Tensor, nn

from pmp_ros.model.pixel_decoder.layers import ConvNorm

# Output level names: the CLIP level of the same stride, prefixed.
SIDE_LEVELS = ("side_res2", "side_res3", "side_res4")


def _down(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-2 conv -> GroupNorm -> ReLU, then a 3x3 conv block: halves the resolution."""
    down = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
    nn.init.kaiming_uniform_(down.weight, a=1)
    return nn.Sequential(
        down,
        nn.GroupNorm(min(8, out_channels), out_channels),
        nn.ReLU(),
        ConvNorm(out_channels, out_channels, 3, activation=nn.ReLU()),
    )


class SideAdapter(nn.Module):
    """images [B,3,H,W] (CLIP-normalised, sides multiples of 32) -> {side_res2 [B,w,H/4,W/4],
    side_res3 [B,2w,H/8,W/8], side_res4 [B,4w,H/16,W/16]} for width w."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = nn.Sequential(_down(3, width // 2), _down(width // 2, width))  # stride 4
        self.stage3 = _down(width, 2 * width)
        self.stage4 = _down(2 * width, 4 * width)
        self.out_channels = dict(zip(SIDE_LEVELS, (width, 2 * width, 4 * width)))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x2 = self.stem(images)
        x3 = self.stage3(x2)
        return dict(zip(SIDE_LEVELS, (x2, x3, self.stage4(x3))))
