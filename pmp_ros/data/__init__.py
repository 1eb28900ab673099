"""Procedural RGB-D tabletop world, class vocabulary and split, robot instructions, COCO io (numpy/OpenCV
only). See docs/data.md."""

from .coco import CocoDataset, export_coco
from .dataset import Sample, TabletopDataset
from .instructions import (Instruction, InstructionParseError, ParsedInstruction, generate_instructions,
                           parse_instruction)
from .vocabulary import all_classes, class_index, seen_classes, unseen_classes
from .world import Intrinsics, Scene, SceneObject, TabletopWorld, WorldConfig

__all__ = [
    "CocoDataset", "export_coco", "Sample", "TabletopDataset", "Instruction",
    "InstructionParseError", "ParsedInstruction", "generate_instructions", "parse_instruction", "all_classes",
    "class_index", "seen_classes", "unseen_classes", "Intrinsics", "Scene", "SceneObject", "TabletopWorld",
    "WorldConfig",
]
