"""Procedural RGB-D tabletop world, class vocabulary and split, robot instructions, COCO io (numpy/OpenCV
only). See docs/data.md."""

from pmp_ros.data.coco import CocoDataset, export_coco
from pmp_ros.data.dataset import Sample, TabletopDataset
from pmp_ros.data.instructions import Instruction, generate_instructions
from pmp_ros.data.vocabulary import all_classes, class_index, seen_classes, unseen_classes
from pmp_ros.data.world import Intrinsics, Scene, SceneObject, TabletopWorld, WorldConfig

__all__ = [
    "CocoDataset",
    "export_coco",
    "Sample",
    "TabletopDataset",
    "Instruction",
    "generate_instructions",
    "all_classes",
    "class_index",
    "seen_classes",
    "unseen_classes",
    "Intrinsics",
    "Scene",
    "SceneObject",
    "TabletopWorld",
    "WorldConfig",
]
