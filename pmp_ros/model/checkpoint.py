"""Model checkpoints: one safetensors file holding the weights and, in its metadata, the ModelConfig.

safetensors cannot execute code on load (unlike pickle) and the embedded config makes a file
self-describing: the model is rebuilt from the config, then its weights are loaded strictly.
Metadata: ``format`` = "pmp_ros.checkpoint", ``version`` = "1", ``config`` = JSON of ModelConfig, plus
any caller-supplied string entries (e.g. training step, dataset).

float32 tensors whose values are all exactly representable in float16 are stored as float16 (lossless:
loading copies them back into float32 parameters bit for bit). The frozen CLIP towers of the shipped
models are rounded to float16 before the segmenter is trained on them, so they take half the space.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from pmp_ros.model.config import ModelConfig
from pmp_ros.model.state_dict_diff import state_dict_mismatch

FORMAT = "pmp_ros.checkpoint"
VERSION = "1"
RESERVED_KEYS = ("format", "version", "config")


class CheckpointError(Exception):
    """A checkpoint cannot be written, read or loaded into a model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, cfg: ModelConfig, extra_metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model.state_dict()`` and ``cfg`` to one safetensors file (atomically: temp file + rename).

    extra_metadata: further entries; non-string values are stored as JSON. Returns the path written.
    """
    metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(cfg.to_dict())}
    for key, value in (extra_metadata or {}).items():
        if key in RESERVED_KEYS:
            raise CheckpointError(f"extra_metadata may not set the reserved key {key!r}")
        metadata[str(key)] = value if isinstance(value, str) else json.dumps(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(_standalone_tensors(model.state_dict()), tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _standalone_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors each owning its whole storage.

    safetensors refuses tensors that share memory (tied weights, views into a larger buffer); a clone is
    made only for those, so a large model is not copied twice.
    """
    seen: set[int] = set()
    out = {}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu()
        storage = t.untyped_storage()
        if (
            storage.data_ptr() in seen
            or not t.is_contiguous()
            or t.storage_offset() != 0
            or storage.nbytes() != t.numel() * t.element_size()
        ):
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(t.untyped_storage().data_ptr())
        out[name] = _compact(t)
    return out


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """float16 copy of a float32 tensor when that loses nothing, else the tensor itself."""
    if tensor.dtype == torch.float32 and tensor.numel() > 0:
        half = tensor.to(torch.float16)
        if torch.equal(half.to(torch.float32), tensor):
            return half
    return tensor


def read_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], ModelConfig, dict[str, str]]:
    """Returns (state_dict on ``device``, ModelConfig, all metadata as strings). Raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            _check_header(path, metadata)
            state_dict = {key: f.get_tensor(key) for key in f.keys()}
    except CheckpointError:
        raise
    except Exception as err:  # safetensors raises its own error types for corrupt and truncated files
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {err}") from err
    try:
        cfg = ModelConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: invalid model config in metadata: {err}") from err
    return state_dict, cfg, metadata


def _check_header(path: Path, metadata: dict[str, str]) -> None:
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a pmp_ros checkpoint (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if metadata.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: unsupported checkpoint version {metadata.get('version')!r} (this code reads {VERSION!r})"
        )
    if "config" not in metadata:
        raise CheckpointError(f"{path}: metadata lacks the model config")


def load_state_strict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load every tensor, requiring the exact key set and shapes; errors name the offending keys."""
    mismatch = state_dict_mismatch(model.state_dict(), state_dict, found_name="checkpoint")
    if mismatch:
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: {mismatch}")
    model.load_state_dict(state_dict, strict=True)


def load_checkpoint(
    path: str | os.PathLike,
    build_fn: Callable[[ModelConfig], nn.Module],
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model with ``build_fn(cfg)`` from the checkpoint's config, load it strictly, move to device."""
    state_dict, cfg, _ = read_checkpoint(path)
    model = build_fn(cfg)
    load_state_strict(model, state_dict)
    return model.to(device), cfg
