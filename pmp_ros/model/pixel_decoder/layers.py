"""Convolution + norm (+ activation) block with detectron2's parameter names, and its initialisers."""

from __future__ import annotations

import math

from torch import Tensor, nn


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm(32) as Mask2Former uses it; fewer groups when the width is not a multiple of 32."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def c2_xavier_fill(module: nn.Module) -> None:
    """Caffe2's XavierFill (uniform, fan-in), which Mask2Former uses for its pixel-decoder convs."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class ConvNorm(nn.Conv2d):
    """Conv2d -> norm -> optional activation; keeps the names `weight`, `bias`, `norm.*` of detectron2's
    Conv2d so checkpoints map one to one. The conv has no bias when a norm follows (the norm's bias
    makes it redundant)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        norm: bool = True,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm)
        self.norm = group_norm(out_channels) if norm else None
        self.activation = activation
        c2_xavier_fill(self)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in, H, W] -> [B, out, H, W]."""
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x
