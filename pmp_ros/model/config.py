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

    def __post_init__(self):
        if self.out_vocabulary not in ("mask_pool", "crop"):
            raise ValueError(f"ensemble.out_vocabulary must be 'mask_pool' or 'crop', got {self.out_vocabulary!r}")
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
    """size: (height, width) the image is resized to before the forward pass.

    zoom_*: a second, zoomed look at small candidates of the prompted classes (pmp_ros/model/zoom.py): after
    the forward pass, proposals of a prompted class scoring at least zoom_score_floor whose mask covers at
    most zoom_max_area of the image get a window of zoom_context times their box (at least zoom_min_window
    of the image's height, zoom_input_size's aspect) cut from the input image, at most zoom_crops per
    image, run as one batch at zoom_size ((0, 0) = the inference size; smaller is cheaper, the crops' scale
    is their window's height over zoom_size's); the crops' instances that overlap a first-look candidate of
    their class at mask IoU >= zoom_candidate_iou (0: every instance of a window) replace the first look's
    at mask IoU >= zoom_match_iou, or join them. zoom_crops 0 = off (exactly the single look).
    """

    size: tuple[int, int] = (240, 320)
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    overlap_threshold: float = 0.8
    max_instances: int = 20
    zoom_crops: int = 0
    zoom_size: tuple[int, int] = (0, 0)
    zoom_max_area: float = 0.005
    zoom_score_floor: float = 0.05
    zoom_context: float = 4.0
    zoom_min_window: float = 0.25
    zoom_match_iou: float = 0.5
    zoom_candidate_iou: float = 0.2

    def __post_init__(self):
        if self.zoom_crops < 0:
            raise ValueError(f"inference.zoom_crops must be >= 0 (0 = off), got {self.zoom_crops}")
        if not 0 < self.zoom_max_area <= 1 or not 0 < self.zoom_min_window <= 1:
            raise ValueError(
                f"inference.zoom_max_area and zoom_min_window must be in (0, 1], got {self.zoom_max_area}, "
                f"{self.zoom_min_window}"
            )
        if self.zoom_context < 1:
            raise ValueError(f"inference.zoom_context must be >= 1 (the window holds the box), got {self.zoom_context}")
        if not 0 <= self.zoom_candidate_iou <= 1:
            raise ValueError(f"inference.zoom_candidate_iou must be in [0, 1], got {self.zoom_candidate_iou}")
        if not 0 < self.zoom_match_iou <= 1:
            raise ValueError(f"inference.zoom_match_iou must be in (0, 1], got {self.zoom_match_iou}")
        if len(self.zoom_size) != 2 or min(self.zoom_size) < 0 or (0 in self.zoom_size and any(self.zoom_size)):
            raise ValueError(f"inference.zoom_size must be (height, width) > 0, or (0, 0), got {self.zoom_size}")

    def zoom_input_size(self) -> tuple[int, int]:
        """(height, width) the zoomed look's crops are resized to."""
        return tuple(self.zoom_size) if any(self.zoom_size) else tuple(self.size)


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
