"""The side adapter: a trainable image branch whose features the FPN adds to the frozen CLIP levels."""

import dataclasses

import pytest
import torch

from pmp_ros.model.checkpoint import save_checkpoint
from pmp_ros.model.config import PixelDecoderConfig
from pmp_ros.model.criterion import SetCriterion
from pmp_ros.model.segmenter import build_segmenter, load_segmenter
from pmp_ros.model.side_adapter import SideAdapter

from model_fixtures import small_config


def _side_config(width: int = 16):
    cfg = small_config()
    return dataclasses.replace(cfg, pixel_decoder=dataclasses.replace(cfg.pixel_decoder, side_adapter=width))


def test_levels_have_the_strides_of_the_clip_levels_they_join():
    out = SideAdapter(16)(torch.randn(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "side_res2": (2, 16, 16, 24),
        "side_res3": (2, 32, 8, 12),
        "side_res4": (2, 64, 4, 6),
    }


def test_training_reaches_the_side_adapter_and_leaves_clip_frozen():
    torch.manual_seed(0)
    cfg = _side_config()
    model = build_segmenter(cfg).train()
    images = torch.rand(2, 3, 64, 96)
    masks = torch.zeros(2, 1, 64, 96, dtype=torch.bool)
    masks[:, 0, 10:40, 20:60] = True
    targets = [{"labels": torch.tensor([0]), "masks": masks[b]} for b in range(2)]
    text = model.encode_text(["red star", "green ring"], [["red star"], ["red star"]])
    criterion = SetCriterion.from_config(cfg.loss)
    criterion.weighted_total(criterion(model(images, text), targets)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.side_adapter.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.pixel_decoder.side_convs.parameters())


def test_checkpoint_with_a_side_adapter_round_trips(tmp_path):
    torch.manual_seed(0)
    cfg = _side_config()
    model = build_segmenter(cfg).eval()
    path = save_checkpoint(tmp_path / "side.safetensors", model, cfg)
    loaded, loaded_cfg = load_segmenter(path)
    assert loaded_cfg.pixel_decoder.side_adapter == 16
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a = model(images, model.encode_text(["red star"], ["red star"]))
        b = loaded(images, loaded.encode_text(["red star"], ["red star"]))
    assert torch.equal(a["pred_masks"], b["pred_masks"])


def test_without_a_side_adapter_the_model_has_no_side_parameters():
    model = build_segmenter(small_config())
    assert model.side_adapter is None and not any("side" in name for name, _ in model.named_parameters())


def test_side_adapter_needs_the_fpn_decoder():
    with pytest.raises(ValueError, match="side_adapter"):
        PixelDecoderConfig(name="msdeform", side_adapter=16)
