"""What an exported ONNX file records about its origin (ONNX metadata_props), so the runtime can refuse a
graph that does not belong to the checkpoint whose text tower encodes its prompts."""

from __future__ import annotations

import hashlib
import os

CHECKPOINT_SHA256 = "pmp_ros.checkpoint_sha256"  # hex digest of the checkpoint file the graph came from
CHECKPOINT_NAME = "pmp_ros.checkpoint"  # its file name, for messages
INPUT_SIZE = "pmp_ros.input_size"  # "HxW", the static image size of the graph
PMP = "pmp_ros.pmp"  # "true" when the graph takes prompt tokens


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_exported_from(onnx_path: str | os.PathLike, checkpoint: str | os.PathLike) -> bool:
    """Whether onnx_path is a graph pmp-export-onnx wrote from this very checkpoint file (its SHA-256)."""
    import onnx

    if not os.path.isfile(onnx_path):
        return False
    recorded = {prop.key: prop.value for prop in onnx.load(onnx_path, load_external_data=False).metadata_props}
    return recorded.get(CHECKPOINT_SHA256) == file_sha256(checkpoint)


def format_size(size: tuple[int, int]) -> str:
    """(height, width) -> "HxW"."""
    return f"{size[0]}x{size[1]}"


def parse_size(text: str) -> tuple[int, int]:
    """ "HxW" -> (height, width)."""
    height, width = text.split("x")
    return int(height), int(width)
