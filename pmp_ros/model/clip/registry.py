"""Which open_clip model to build and where its weights come from.

The project's own small configs (``configs/*.json``) are registered into open_clip's model registry, so
every model, ours or upstream, is built by ``open_clip.create_model`` and loads weights through
open_clip's own path (tag download or local file, with its state-dict conversions). This module only
adds checks before that call and readable errors after it.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.factory import load_state_dict as read_open_clip_weights
from torch import nn

from pmp_ros.model.config import ClipConfig
from pmp_ros.model.state_dict_diff import state_dict_mismatch

CONFIG_DIR = Path(__file__).parent / "configs"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")

_registered = False


class ModelLoadError(Exception):
    """Base class: the CLIP model could not be built or its weights could not be loaded."""


class UnknownModelError(ModelLoadError, ValueError):
    """The model name or pretrained tag is not known to open_clip."""


class WeightsNotFoundError(ModelLoadError, FileNotFoundError):
    """A local weights file named in the config does not exist."""


class WeightsMismatchError(ModelLoadError, ValueError):
    """The weights file does not fit the architecture (missing, unexpected or mis-shaped keys)."""


def register_project_configs() -> None:
    """Add ``configs/*.json`` to open_clip's registry (idempotent: open_clip appends, never dedups)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def available_models() -> list[str]:
    """All open_clip model names, the project's configs included."""
    register_project_configs()
    return open_clip.list_models()


class _RandomInitNotice(logging.Filter):
    """Drops open_clip's "Model initialized randomly" warning (root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def weights_loaded_after() -> Iterator[None]:
    """For a tower built with ``pretrained=None`` whose weights are loaded right after (a segmenter
    checkpoint): open_clip's warning that the model is initialized randomly would tell the user the
    opposite of what happens, in every node and evaluation log."""
    notice = _RandomInitNotice()
    logging.getLogger().addFilter(notice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(notice)


def create_clip(cfg: ClipConfig, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """Build ``cfg.model_name`` with weights from ``cfg.pretrained``; returns (model in eval mode, tokenizer).

    ``cfg.pretrained``: None (random init; the segmenter checkpoint supplies the weights), a path to a
    ``.pt/.pth/.bin/.safetensors`` file (open_clip's state-dict layout), or an open_clip pretrained tag.
    Raises UnknownModelError, WeightsNotFoundError or WeightsMismatchError (all ModelLoadError).
    """
    names = available_models()
    if cfg.model_name not in names:
        close = difflib.get_close_matches(cfg.model_name, names, n=5, cutoff=0.5)
        raise UnknownModelError(
            f"unknown open_clip model {cfg.model_name!r}; close names: {close or 'none'} "
            f"(project configs: {sorted(p.stem for p in CONFIG_DIR.glob('*.json'))})"
        )
    pretrained = cfg.pretrained
    if pretrained is not None:
        if _looks_like_path(pretrained):
            if not os.path.isfile(pretrained):
                raise WeightsNotFoundError(f"CLIP weights file not found: {pretrained}")
        else:
            tags = open_clip.list_pretrained_tags_by_model(cfg.model_name)
            if pretrained not in tags:
                raise UnknownModelError(
                    f"unknown pretrained tag {pretrained!r} for {cfg.model_name!r}; known tags: {tags or 'none'} "
                    "(or give a path to a local weights file)"
                )
    try:
        model = open_clip.create_model(cfg.model_name, pretrained=pretrained, device=device)
    except Exception as err:  # open_clip raises bare RuntimeError/KeyError for every loading problem
        if pretrained is not None and _looks_like_path(pretrained):
            raise _diagnose_weights(cfg.model_name, pretrained, err) from err
        raise ModelLoadError(f"could not build {cfg.model_name!r} with pretrained={pretrained!r}: {err}") from err
    tokenizer = open_clip.get_tokenizer(cfg.model_name)
    return model.eval(), tokenizer


def _looks_like_path(pretrained: str) -> bool:
    return pretrained.endswith(WEIGHT_SUFFIXES) or os.sep in pretrained or os.path.exists(pretrained)


def _diagnose_weights(model_name: str, path: str, err: Exception) -> ModelLoadError:
    """Turn open_clip's loading failure into an error naming the keys that do not fit."""
    try:
        file_state = read_open_clip_weights(path)
    except Exception as read_err:
        return ModelLoadError(f"could not read CLIP weights file {path} (corrupt or not a state dict?): {read_err}")
    model_state = open_clip.create_model(model_name, pretrained=None).state_dict()
    mismatch = state_dict_mismatch(model_state, file_state)
    if not mismatch:
        return ModelLoadError(f"could not load {path} into {model_name!r}: {err}")
    return WeightsMismatchError(
        f"weights file {path} does not fit open_clip model {model_name!r} (another architecture?); " + mismatch
    )
