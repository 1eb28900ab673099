"""Model configuration: one dataclass tree, serialised into every checkpoint.

Defaults follow Mask2Former / FC-CLIP (see docs/model.md); the project's small shipped model overrides
sizes in its checkpoint, never here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pmp_ros import settings

# VILD-style prompt templates, shortened; FC-CLIP averages the text embedding over templates like these.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "there is a {} in the scene.",
    "a {} on the table.",
)


@dataclass
class ClipConfig:
    """Which open_clip model feeds the segmenter.

    model_name: an open_clip name (e.g. "RN50", "convnext_large_d_320") or one of the project's configs
        registered from JSON (pmp_ros/model/clip/configs/*.json).
    pretrained: an open_clip pretrained tag (machines that reach a hub), a local weights file
        (.pt/.bin/.safetensors), or None (weights come from the segmenter checkpoint instead).
    """

    model_name: str = "pmp-tiny-rn"
    pretrained: str | None = None
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    frozen: bool = True


@dataclass
class PixelDecoderConfig:
    """name: "msdeform" (Mask2Former's multi-scale deformable-attention encoder) or "fpn" (light, CPU).

    side_adapter: width of a trainable image branch whose stride 4/8/16 features the FPN adds to the frozen
        CLIP's (pmp_ros/model/side_adapter.py); 0 = none (FC-CLIP's design).
    """

    name: str = "msdeform"
    conv_dim: int = 256
    mask_dim: int = 256
    num_heads: int = 8
    num_encoder_layers: int = 6
    encoder_ffn_dim: int = 1024
    num_points: int = 4
    side_adapter: int = 0

    def __post_init__(self):
        if self.side_adapter and self.name != "fpn":
            raise ValueError(f"pixel_decoder.side_adapter needs the 'fpn' pixel decoder, not {self.name!r}")


@dataclass
class DecoderConfig:
    """Mask2Former query decoder plus PMP.

    num_layers: decoder layers actually run (FC-CLIP's DEC_LAYERS minus one: 9 for the public model).
    pmp: PMP on (queries cross-attend to prompt text tokens after every layer) or off (ablation twin).
    """

    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    ffn_dim: int = 2048
    num_layers: int = 9
    enforce_input_proj: bool = False
    pmp: bool = True
    pmp_num_heads: int = 8


UNSEEN_RULES = ("fcclip", "split")  # EnsembleConfig.unseen_rule


@dataclass
class EnsembleConfig:
    """FC-CLIP's geometric ensemble of in-vocabulary and out-of-vocabulary (CLIP) classifiers.

    out_vocabulary: where the CLIP classifier's image embedding of a proposal comes from:
        "mask_pool" (FC-CLIP: the frozen tower's dense stride-32 features averaged over the mask) or
        "crop" (the tower run on a crop of `crop_size` pixels around the mask, at native scale: what a
        small CLIP pretrained on object crops recognises far better than coarse dense features).
    """

    alpha: float = 0.4  # weight of the out-of-vocabulary classifier for classes seen in training
    beta: float = 0.8  # ... for classes not seen in training
    on_valid_mask: bool = False
    out_vocabulary: str = "mask_pool"
    crop_size: int = 64
    max_crops: int = 0  # "crop": crop only this many queries per image, most object-like first; 0 = all
    # How seen and unseen classes compete (model/classifier.py geometric_ensemble): "fcclip" (one softmax,
    # alpha/beta per class) or "split" (seen against unseen as groups first, weighted by beta).
    unseen_rule: str = "fcclip"
    # "crop": the crop classifier's own image tower (state prefix `crop_backbone.`), trained on zoomed crops
    # against the frozen text tower (pmp-train-clip --crop-tower 1), attached by ship_model --crop-tower. The
    # segmenter's own tower keeps serving the dense features it was trained on.
    crop_tower: bool = False
    # "crop" windows: crop_zoom 0 = native scale (side max(crop_size, 1.2 x the mask's box)); > 0 = zoomed
    # (side max(crop_min_side, crop_zoom x the box's longer side), resized to crop_size), as the crop tower
    # was trained (ship_model --crop-tower copies both from the tower's file).
    crop_zoom: float = 0.0
    crop_min_side: int = 16

    def __post_init__(self):
        if self.out_vocabulary not in ("mask_pool", "crop"):
            raise ValueError(f"ensemble.out_vocabulary must be 'mask_pool' or 'crop', got {self.out_vocabulary!r}")
        if self.crop_tower and self.out_vocabulary != "crop":
            raise ValueError("ensemble.crop_tower needs ensemble.out_vocabulary 'crop'")
        if self.unseen_rule not in UNSEEN_RULES:
            raise ValueError(f"ensemble.unseen_rule must be one of {UNSEEN_RULES}, got {self.unseen_rule!r}")


@dataclass
class LossConfig:
    """Mask2Former's training defaults."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    deep_supervision: bool = True


@dataclass
class InferenceConfig:
    """size: (height, width) the image is resized to before the forward pass."""

    size: tuple[int, int] = (240, 320)
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    overlap_threshold: float = 0.8
    max_instances: int = 20


@dataclass
class ModelConfig:
    clip: ClipConfig = field(default_factory=ClipConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # Class names the mask generator was trained on: decides alpha (seen) vs beta (unseen) per class.
    train_classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a (possibly partial) nested dict; unknown keys raise ValueError naming them."""
        return settings.from_dict(cls, data)
