"""open_clip towers: image backbone, text encoder, and model/weight loading."""

from pmp_ros.model.clip.backbone import ClipBackbone
from pmp_ros.model.clip.registry import (
    ModelLoadError,
    UnknownModelError,
    WeightsMismatchError,
    WeightsNotFoundError,
    available_models,
    create_clip,
    register_project_configs,
)
from pmp_ros.model.clip.text import ClipTextEncoder

__all__ = [
    "ClipBackbone",
    "ClipTextEncoder",
    "ModelLoadError",
    "UnknownModelError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "available_models",
    "create_clip",
    "register_project_configs",
]
