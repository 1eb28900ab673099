"""Checkpoints: round trip, strict loading errors, unreadable files."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pmp_ros.model.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_state_strict,
    read_checkpoint,
    save_checkpoint,
)
from pmp_ros.model.config import ModelConfig


class Tiny(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.embed = nn.Embedding(10, width)
        self.out = nn.Linear(width, 10, bias=False)
        self.out.weight = self.embed.weight  # tied: safetensors refuses shared storage unless handled
        self.norm = nn.BatchNorm1d(width)


def config():
    cfg = ModelConfig()
    cfg.decoder.num_queries = 7
    cfg.clip.templates = ("a {}",)
    cfg.train_classes = ("cup", "bowl")
    return cfg


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    model.norm.running_mean.add_(1.0)
    path = save_checkpoint(tmp_path / "sub" / "model.safetensors", model, config(), {"step": 12, "note": "hi"})
    state, cfg, metadata = read_checkpoint(path)
    assert cfg == config()
    assert metadata["format"] == "pmp_ros.checkpoint" and metadata["version"] == "1"
    assert metadata["step"] == "12" and metadata["note"] == "hi"
    expected = model.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)

    rebuilt, cfg2 = load_checkpoint(path, lambda c: Tiny())
    assert cfg2 == cfg
    assert all(torch.equal(v, expected[k]) for k, v in rebuilt.state_dict().items())
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_mismatched_shape_names_the_key(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", Tiny(width=4), config())
    state, _, _ = read_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"mis-shaped.*embed\.weight: checkpoint \(10, 4\) vs model \(10, 6\)"):
        load_state_strict(Tiny(width=6), state)


def test_missing_and_unexpected_keys_are_named():
    state = Tiny().state_dict()
    state["extra.weight"] = state.pop("norm.bias")
    with pytest.raises(CheckpointError, match=r"missing keys.*norm\.bias.*unexpected keys.*extra\.weight"):
        load_state_strict(Tiny(), state)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as info:
        read_checkpoint(tmp_path / "none.safetensors")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_file(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.safetensors", Tiny(), config())
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 10 if damage == "garbage" else data[: len(data) - 20])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"format": "other"}, "not a pmp_ros checkpoint"),
        ({"format": "pmp_ros.checkpoint", "version": "9"}, "unsupported checkpoint version '9'"),
    ],
)
def test_wrong_format_or_version(tmp_path, metadata, message):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata={**metadata, "config": "{}"})
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_reserved_metadata_key_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "r.safetensors", Tiny(), config(), {"config": "x"})


def test_float16_exact_tensors_are_stored_compactly_and_load_exactly(tmp_path):
    model = nn.Linear(64, 64)
    with torch.no_grad():
        model.weight.copy_(model.weight.half().float())  # exactly representable in float16
        model.bias.add_(1e-7)  # not representable: must stay float32
    path = save_checkpoint(tmp_path / "m.safetensors", model, config())
    state, _, _ = read_checkpoint(path)
    assert state["weight"].dtype == torch.float16 and state["bias"].dtype == torch.float32
    rebuilt, _ = load_checkpoint(path, lambda c: nn.Linear(64, 64))
    assert rebuilt.weight.dtype == torch.float32
    assert torch.equal(rebuilt.weight, model.weight) and torch.equal(rebuilt.bias, model.bias)
