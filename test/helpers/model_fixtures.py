"""Small real models for tests: the shipped architecture at toy sizes (random weights, seconds on a CPU).

Random weights give arbitrary outputs with the real shapes, dtypes, code paths and latency.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pmp_ros.model.config import ModelConfig

TRAIN_CLASSES = ("red star", "green ring", "blue cross", "yellow square")


def small_config(pmp: bool = True, pixel_decoder: str = "fpn") -> ModelConfig:
    """The project's tiny CLIP with a toy head: 64 channels, 3 decoder layers, 12 queries."""
    cfg = ModelConfig()
    cfg.clip.model_name = "pmp-tiny-rn"
    cfg.clip.templates = ("a photo of a {}.", "a {} on the table.")
    cfg.pixel_decoder.name = pixel_decoder
    cfg.pixel_decoder.conv_dim = cfg.pixel_decoder.mask_dim = 64
    cfg.pixel_decoder.num_heads = 4
    cfg.pixel_decoder.num_encoder_layers = 1
    cfg.pixel_decoder.encoder_ffn_dim = 128
    cfg.decoder.hidden_dim = 64
    cfg.decoder.num_queries = 12
    cfg.decoder.num_heads = 4
    cfg.decoder.ffn_dim = 128
    cfg.decoder.num_layers = 3
    cfg.decoder.pmp = pmp
    cfg.decoder.pmp_num_heads = 4
    cfg.inference.size = (64, 96)
    cfg.loss.num_points = 256
    cfg.train_classes = TRAIN_CLASSES
    return cfg


def build_small_segmenter(segmenter_module=None, pmp: bool = True, seed: int = 0):
    """(PMPSegmenter in eval mode, its ModelConfig), deterministic by seed."""
    if segmenter_module is None:
        from pmp_ros.model import segmenter as segmenter_module
    cfg = small_config(pmp=pmp)
    torch.manual_seed(seed)
    return segmenter_module.build_segmenter(cfg).eval(), cfg


def write_small_checkpoint(path: Path, pmp: bool = True, seed: int = 0) -> Path:
    """A loadable checkpoint of build_small_segmenter's model."""
    from pmp_ros.model.checkpoint import save_checkpoint

    model, cfg = build_small_segmenter(pmp=pmp, seed=seed)
    return save_checkpoint(path, model, cfg)
