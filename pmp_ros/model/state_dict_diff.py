"""Readable differences between a model's state dict and a file's: the one place that words them."""

from __future__ import annotations

from collections.abc import Mapping

import torch

MAX_LISTED_KEYS = 10


def state_dict_mismatch(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], found_name: str = "file"
) -> str:
    """ "missing keys (n): [...]; unexpected keys (n): [...]; mis-shaped (n): [...]", or "" if they fit."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [
        f"{k}: {found_name} {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if found[k].shape != expected[k].shape
    ]
    return "; ".join(
        f"{title} ({len(keys)}): {keys[:MAX_LISTED_KEYS]}{' ...' if len(keys) > MAX_LISTED_KEYS else ''}"
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped", misshaped))
        if keys
    )
