"""settings.from_dict: the one strict mapping -> dataclass path of ModelConfig, TrainConfig and the CLIP
pretraining options."""

import re

import pytest

from pmp_ros.model.config import ModelConfig
from pmp_ros.settings import from_dict
from pmp_ros.train.clip_pretrain import ClipPretrainConfig
from pmp_ros.train.train_pmp import TrainConfig, train_config


def test_nested_partial_mappings_fill_defaults_and_lists_become_tuples():
    cfg = ModelConfig.from_dict({"decoder": {"num_queries": 7}, "inference": {"size": [120, 160]}})
    assert cfg.decoder.num_queries == 7 and cfg.decoder.hidden_dim == ModelConfig().decoder.hidden_dim
    assert cfg.inference.size == (120, 160)
    assert train_config({"coco_image_size": [240, 320]}).coco_image_size == (240, 320)


@pytest.mark.parametrize(
    "build, data, message",
    [
        (ModelConfig.from_dict, {"decoder": {"num_querys": 7}}, "config.decoder: unknown key(s) ['num_querys']"),
        (train_config, {"stepz": 3}, "train: unknown key(s) ['stepz']"),
        (lambda d: from_dict(ClipPretrainConfig, d, "clip"), {"lr": 1, "crop": 3}, "clip: unknown key(s) ['crop']"),
        (ModelConfig.from_dict, {"decoder": 3}, "config.decoder: expected a mapping"),
        (train_config, {"lr": "fast"}, "train.lr: expected a number, got 'fast'"),
    ],
)
def test_unknown_keys_and_wrong_shapes_are_named(build, data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(data)


def test_a_train_config_round_trips():
    assert train_config({"steps": 5, "lr": 0.1}) == TrainConfig(steps=5, lr=0.1)


def test_numbers_yaml_reads_as_strings_become_floats():
    import yaml

    assert isinstance(yaml.safe_load("1e-6"), str)  # YAML 1.1: no dot, no float
    cfg = train_config({"max_minutes": yaml.safe_load("1e-6"), "lr": 1})
    assert cfg.max_minutes == 1e-6 and isinstance(cfg.lr, float)
