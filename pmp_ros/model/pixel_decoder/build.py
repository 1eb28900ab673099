"""Chooses the pixel decoder named by cfg.pixel_decoder.name."""

from __future__ import annotations

from torch import nn

from pmp_ros.model.config import PixelDecoderConfig
from pmp_ros.model.pixel_decoder.fpn import FPNPixelDecoder
from pmp_ros.model.pixel_decoder.msdeform import MSDeformAttnPixelDecoder


def build_pixel_decoder(cfg: PixelDecoderConfig, in_channels: dict[str, int]) -> nn.Module:
    """in_channels: res2..res5 widths (+ side_res2..side_res4 with a side adapter). The module maps features
    to (mask_features, [1/32, 1/16, 1/8])."""
    if cfg.name == "msdeform":
        return MSDeformAttnPixelDecoder(
            in_channels,
            conv_dim=cfg.conv_dim,
            mask_dim=cfg.mask_dim,
            num_heads=cfg.num_heads,
            num_encoder_layers=cfg.num_encoder_layers,
            encoder_ffn_dim=cfg.encoder_ffn_dim,
            num_points=cfg.num_points,
        )
    if cfg.name == "fpn":
        side = {name: width for name, width in in_channels.items() if name.startswith("side_")}
        return FPNPixelDecoder(in_channels, conv_dim=cfg.conv_dim, mask_dim=cfg.mask_dim, side_channels=side)
    raise ValueError(f"unknown pixel decoder {cfg.name!r}; known: 'msdeform', 'fpn'")
