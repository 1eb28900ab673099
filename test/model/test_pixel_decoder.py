"""Pixel decoders, deformable attention and the sine position encoding."""

from __future__ import annotations

import math

import pytest
import torch

from pmp_ros.model.config import PixelDecoderConfig
from pmp_ros.model.pixel_decoder import FPNPixelDecoder, MSDeformAttnPixelDecoder, build_pixel_decoder
from pmp_ros.model.pixel_decoder.ms_deform_attn import ms_deform_attn_core
from pmp_ros.model.position_encoding import PositionEmbeddingSine

IN_CHANNELS = {"res2": 16, "res3": 24, "res4": 32, "res5": 40}


def _features(h, w, b=1, seed=0):
    """Backbone-like features for an h x w image (ceil division per stride, like strided convs)."""
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(b, c, math.ceil(h / s), math.ceil(w / s), generator=g)
        for (name, c), s in zip(IN_CHANNELS.items(), (4, 8, 16, 32))
    }


def test_position_encoding_layout():
    pe = PositionEmbeddingSine(4)  # 8 channels: y (sin f0, cos f0, sin f1, cos f1), then x
    pos = pe(torch.zeros(2, 3, 3, 5))
    assert pos.shape == (2, 8, 3, 5) and pos.dtype == torch.float32
    y = torch.arange(1, 4, dtype=torch.float32) / (3 + 1e-6) * 2 * math.pi
    x = torch.arange(1, 6, dtype=torch.float32) / (5 + 1e-6) * 2 * math.pi
    f1 = 10000 ** (2 / 4)
    torch.testing.assert_close(pos[0, 0, :, 0], y.sin())
    torch.testing.assert_close(pos[0, 1, :, 0], y.cos())
    torch.testing.assert_close(pos[0, 2, :, 0], (y / f1).sin())
    torch.testing.assert_close(pos[0, 3, :, 0], (y / f1).cos())
    torch.testing.assert_close(pos[0, 4, 0, :], x.sin())
    torch.testing.assert_close(pos[0, 7, 0, :], (x / f1).cos())
    assert torch.equal(pos[0, 0, :, 0], pos[0, 0, :, 4])  # y channels constant along x


def test_deform_core_samples_pixel_centres():
    """A location at a pixel centre with all weight on it returns exactly that pixel's value."""
    shapes = [(2, 3), (4, 5)]
    n, m, d = 1, 2, 3
    value = torch.randn(n, sum(h * w for h, w in shapes), m, d)
    loc = torch.zeros(n, 1, m, 2, 1, 2)
    loc[..., 1, 0, 0] = (3 + 0.5) / 5  # level 1, pixel (row 2, col 3)
    loc[..., 1, 0, 1] = (2 + 0.5) / 4
    weights = torch.zeros(n, 1, m, 2, 1)
    weights[..., 1, 0] = 1.0
    out = ms_deform_attn_core(value, shapes, loc, weights)
    expected = value[:, 6 + 2 * 5 + 3]  # [n, m, d]: level-1 offset 6, row-major index
    torch.testing.assert_close(out, expected.reshape(n, 1, m * d))


@pytest.mark.parametrize("name", ["msdeform", "fpn"])
@pytest.mark.parametrize("hw", [(200, 264), (96, 128)])
def test_pixel_decoder_shapes(name, hw):
    cfg = PixelDecoderConfig(name=name, conv_dim=32, mask_dim=24, num_heads=4, num_encoder_layers=1)
    dec = build_pixel_decoder(cfg, IN_CHANNELS)
    feats = _features(*hw, b=2)
    mask_features, multi_scale = dec(feats)
    assert mask_features.shape == (2, 24, *feats["res2"].shape[-2:])
    assert [tuple(f.shape) for f in multi_scale] == [(2, 32, *feats[k].shape[-2:]) for k in ("res5", "res4", "res3")]
    assert torch.isfinite(mask_features).all()


def test_build_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown pixel decoder"):
        build_pixel_decoder(PixelDecoderConfig(name="nope"), IN_CHANNELS)
    assert isinstance(build_pixel_decoder(PixelDecoderConfig(name="fpn", conv_dim=32), IN_CHANNELS), FPNPixelDecoder)


def test_msdeform_runs_fp32_under_autocast():
    torch.manual_seed(0)
    dec = MSDeformAttnPixelDecoder(IN_CHANNELS, conv_dim=32, mask_dim=32, num_heads=4, num_encoder_layers=1).eval()
    feats = _features(64, 96)
    with torch.no_grad():
        ref_mask, ref_ms = dec(feats)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mask, ms = dec({k: v.bfloat16() for k, v in feats.items()})
    assert mask.dtype == torch.float32 and all(f.dtype == torch.float32 for f in ms)
    # Only the bf16 rounding of the inputs differs.
    torch.testing.assert_close(mask, ref_mask, atol=0.1, rtol=0.05)


def test_fpn_batch_equals_single_runs():
    torch.manual_seed(0)
    dec = FPNPixelDecoder(IN_CHANNELS, conv_dim=32, mask_dim=32).eval()
    feats = _features(64, 96, b=3)
    with torch.no_grad():
        batch, _ = dec(feats)
        singles = torch.cat([dec({k: v[i : i + 1] for k, v in feats.items()})[0] for i in range(3)])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=1e-5)
