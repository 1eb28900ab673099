"""Mask2Former's pixel decoder: a deformable-attention encoder over [1/32, 1/16, 1/8] plus one FPN step to 1/4.

Parameter names follow FC-CLIP's `sem_seg_head.pixel_decoder.*` (docs/fcclip.md).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pmp_ros.model.pixel_decoder.layers import ConvNorm, c2_xavier_fill, group_norm
from pmp_ros.model.pixel_decoder.ms_deform_attn import MSDeformAttn
from pmp_ros.model.position_encoding import PositionEmbeddingSine

# Encoder levels, low resolution first (input_proj[0] projects res5), as in FC-CLIP.
ENCODER_FEATURES = ("res5", "res4", "res3")


class MSDeformEncoderLayer(nn.Module):
    """Post-norm: src = norm1(src + attn(src + pos, value=src)); src = norm2(src + FFN(src))."""

    def __init__(self, d_model: int, ffn_dim: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> Tensor:
        """src, pos: [N, S, C]; reference_points: [N, S, 2] -> [N, S, C]."""
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, spatial_shapes))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class MSDeformEncoder(nn.Module):
    """Stack of encoder layers (state-dict prefix `encoder.layers.{i}`)."""

    def __init__(self, num_layers: int, **layer_kwargs: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MSDeformEncoderLayer(**layer_kwargs) for _ in range(num_layers))

    def forward(
        self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos, reference_points, spatial_shapes)
        return src


class MSDeformTransformer(nn.Module):
    """Flattens the levels, adds the level embedding to the positional term, runs the encoder."""

    def __init__(self, d_model: int, n_heads: int, num_layers: int, ffn_dim: int, n_levels: int, n_points: int) -> None:
        super().__init__()
        self.encoder = MSDeformEncoder(
            num_layers, d_model=d_model, ffn_dim=ffn_dim, n_levels=n_levels, n_heads=n_heads, n_points=n_points
        )
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        # Deformable DETR's init: xavier on matrices, then the deformable layers' own init.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for module in self.modules():
            if isinstance(module, MSDeformAttn):
                module.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: list[Tensor], pos_embeds: list[Tensor]) -> Tensor:
        """srcs, pos_embeds: per level [N, C, H_l, W_l] -> [N, sum H_l*W_l, C]."""
        shapes = [(s.shape[2], s.shape[3]) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], dim=1)
        pos = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1) for lvl, p in enumerate(pos_embeds)],
            dim=1,
        )
        reference_points = _reference_points(shapes, src.device).unsqueeze(0).expand(src.shape[0], -1, -1)
        return self.encoder(src, pos, reference_points, shapes)


def _reference_points(shapes: list[tuple[int, int]], device: torch.device) -> Tensor:
    """Pixel centres ((j + 0.5) / W, (i + 0.5) / H) of every level, concatenated: [S, 2] (x, y)."""
    refs = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
        refs.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
    return torch.cat(refs, 0)


class MSDeformAttnPixelDecoder(nn.Module):
    """res2..res5 -> (mask_features [B, mask_dim, H/4, W/4], [1/32, 1/16, 1/8] features of conv_dim).

    Runs in fp32 with autocast disabled, as FC-CLIP does (grid_sample offsets need the precision).
    """

    def __init__(
        self,
        in_channels: dict[str, int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        encoder_ffn_dim: int = 1024,
        num_points: int = 4,
    ) -> None:
        super().__init__()
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels[name], conv_dim, kernel_size=1), group_norm(conv_dim))
            for name in ENCODER_FEATURES
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        self.transformer = MSDeformTransformer(
            conv_dim, num_heads, num_encoder_layers, encoder_ffn_dim, len(ENCODER_FEATURES), num_points
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        c2_xavier_fill(self.mask_features)
        # One FPN step (1/8 -> 1/4) with FC-CLIP's names; its common stride is 4.
        self.adapter_1 = ConvNorm(in_channels["res2"], conv_dim, 1)
        self.layer_1 = ConvNorm(conv_dim, conv_dim, 3, activation=nn.ReLU())
        self.conv_dim, self.mask_dim = conv_dim, mask_dim

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        """features: res2 [B,c2,H/4,W/4] ... res5 [B,c5,H/32,W/32] (any float dtype).
        Returns float32 mask_features [B,mask_dim,H/4,W/4] and [1/32, 1/16, 1/8] maps [B,conv_dim,h,w]."""
        device_type = features["res5"].device.type
        no_autocast = (
            torch.autocast(device_type=device_type, enabled=False)
            if torch.amp.is_autocast_available(device_type)
            else contextlib.nullcontext()
        )
        with no_autocast:
            srcs = [proj(features[name].float()) for proj, name in zip(self.input_proj, ENCODER_FEATURES)]
            pos = [self.pe_layer(s) for s in srcs]
            memory = self.transformer(srcs, pos)
            sizes = [s.shape[2] * s.shape[3] for s in srcs]
            multi_scale = [
                m.transpose(1, 2).reshape(m.shape[0], -1, s.shape[2], s.shape[3])
                for m, s in zip(memory.split(sizes, dim=1), srcs)
            ]
            lateral = self.adapter_1(features["res2"].float())
            up = F.interpolate(multi_scale[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            mask_features = self.mask_features(self.layer_1(lateral + up))
        return mask_features, multi_scale
