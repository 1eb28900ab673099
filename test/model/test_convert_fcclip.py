"""FC-CLIP checkpoint conversion: the public config's 302 head keys load strictly; errors name keys; the
command writes a checkpoint with FC-CLIP's text settings (COCO panoptic classes, templates) by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pmp_ros.model.checkpoint import read_checkpoint
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.fcclip_import import (
    FCCLIP_TEMPLATES,
    PMP_PREFIX,
    ConversionError,
    check_backbone_state_dict,
    convert_fcclip_state_dict,
    load_fcclip_checkpoint,
    main,
    read_class_names,
)
from pmp_ros.model.head import PMPHead

from fcclip_checkpoints import public_fcclip_config, public_head_shapes, write_fcclip_checkpoint
from model_fixtures import small_config

COCO_PANOPTIC_CLASSES = Path(__file__).resolve().parents[2] / "config" / "coco_panoptic_classes.yaml"
FULL_IN_CHANNELS = {"res2": 192, "res3": 384, "res4": 768, "res5": 1536}


@pytest.fixture(scope="module")
def public_shapes() -> dict[str, list[int]]:
    return public_head_shapes()  # the fixture manifest is part of the checkout: missing is a failure


def _random_sd(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v, generator=g) for k, v in shapes.items()}


def _public_cfg_with_pmp() -> ModelConfig:
    cfg = public_fcclip_config()
    cfg.decoder.pmp = True
    return cfg


def test_public_config_loads_strictly(public_shapes):
    assert len(public_shapes) == 302
    fc_sd = _random_sd(public_shapes)
    conv = convert_fcclip_state_dict(fc_sd, text_width=768)
    assert conv.in_channels == FULL_IN_CHANNELS and conv.clip_dim == 768
    assert conv.cfg.pixel_decoder == _public_cfg_with_pmp().pixel_decoder
    assert conv.cfg.decoder == _public_cfg_with_pmp().decoder
    head = PMPHead(_public_cfg_with_pmp(), FULL_IN_CHANNELS, 768, 768)
    head.load_state_dict(conv.head_state_dict, strict=True)  # raises on any missing/unexpected/mis-shaped key
    sd = head.state_dict()
    for key, value in fc_sd.items():
        if key.startswith("sem_seg_head."):
            assert torch.equal(sd[key[len("sem_seg_head.") :]], value), key
    assert torch.equal(conv.void_embedding, fc_sd["void_embedding.weight"])
    pmp_keys = [k for k in sd if k.startswith(PMP_PREFIX)]
    assert len(pmp_keys) == len(sd) - 301 and pmp_keys
    for i in range(9):  # added PMP layers are identities: zero output projection
        assert torch.all(sd[f"{PMP_PREFIX}{i}.attn.out_proj.weight"] == 0)
        assert torch.all(sd[f"{PMP_PREFIX}{i}.attn.out_proj.bias"] == 0)


def test_no_pmp_twin_has_exactly_the_fcclip_keys(public_shapes):
    conv = convert_fcclip_state_dict(_random_sd(public_shapes), pmp=False)
    cfg = public_fcclip_config()
    assert not conv.cfg.decoder.pmp
    assert len(conv.head_state_dict) == 301
    PMPHead(cfg, FULL_IN_CHANNELS, 768).load_state_dict(conv.head_state_dict, strict=True)


def test_backbone_prefix_stripped_and_text_width_read(public_shapes):
    fc_sd = _random_sd(public_shapes)
    fc_sd["backbone.clip_model.ln_final.weight"] = torch.ones(640)
    fc_sd["backbone.clip_model.visual.trunk.stem.0.weight"] = torch.ones(3)
    fc_sd["criterion.empty_weight"] = torch.ones(134)
    conv = convert_fcclip_state_dict(fc_sd)
    assert set(conv.backbone_state_dict) == {"ln_final.weight", "visual.trunk.stem.0.weight"}
    assert conv.text_width == 640
    assert conv.head_state_dict[f"{PMP_PREFIX}0.text_proj.weight"].shape == (256, 640)
    assert conv.dropped == ["criterion.empty_weight"]


def test_unmapped_key_is_named(public_shapes):
    fc_sd = _random_sd(public_shapes)
    fc_sd["sem_seg_head.extra_thing.weight"] = torch.ones(1)
    with pytest.raises(ConversionError, match="sem_seg_head.extra_thing.weight"):
        convert_fcclip_state_dict(fc_sd, text_width=768)


def test_missing_unexpected_and_misshaped_keys_are_named(public_shapes):
    fc_sd = _random_sd(public_shapes)
    del fc_sd["sem_seg_head.predictor.transformer_ffn_layers.3.norm.bias"]
    fc_sd["sem_seg_head.predictor.decoder_norm.weight"] = torch.ones(255)
    fc_sd["sem_seg_head.predictor.bogus.weight"] = torch.ones(1)
    with pytest.raises(ConversionError) as err:
        convert_fcclip_state_dict(fc_sd, text_width=768)
    msg = str(err.value)
    assert "predictor.transformer_ffn_layers.3.norm.bias" in msg
    assert "predictor.decoder_norm.weight: (255,) vs expected (256,)" in msg
    assert "predictor.bogus.weight" in msg


def test_missing_void_and_text_width_are_reported(public_shapes):
    fc_sd = _random_sd(public_shapes)
    with pytest.raises(ConversionError, match="text width"):
        convert_fcclip_state_dict(fc_sd)
    del fc_sd["void_embedding.weight"]
    with pytest.raises(ConversionError, match="void_embedding"):
        convert_fcclip_state_dict(fc_sd, text_width=768)


def test_pmp_init_is_reproducible(public_shapes):
    fc_sd = _random_sd(public_shapes)
    a = convert_fcclip_state_dict(fc_sd, text_width=768, seed=3).head_state_dict
    b = convert_fcclip_state_dict(fc_sd, text_width=768, seed=3).head_state_dict
    key = f"{PMP_PREFIX}2.text_proj.weight"
    assert torch.equal(a[key], b[key]) and a[key].abs().sum() > 0


def test_load_detectron2_style_checkpoint(tmp_path, public_shapes):
    fc_sd = _random_sd({k: v for k, v in list(public_shapes.items())[:3]})
    path = tmp_path / "fcclip.pth"
    torch.save({"model": fc_sd, "iteration": 7, "__author__": "test"}, path)
    loaded = load_fcclip_checkpoint(path)
    assert loaded.keys() == fc_sd.keys() and all(torch.equal(loaded[k], fc_sd[k]) for k in fc_sd)


def test_backbone_keys_checked_against_open_clip():
    import open_clip

    with torch.device("meta"):
        ref = open_clip.create_model("RN50", pretrained=None, device="meta").state_dict()
    check_backbone_state_dict(ref, "RN50")
    partial = dict(ref)
    partial.pop("visual.attnpool.c_proj.weight")
    with pytest.raises(ConversionError, match="visual.attnpool.c_proj.weight"):
        check_backbone_state_dict(partial, "RN50")


def test_cli_refuses_bad_checkpoint(tmp_path, capsys):
    path = tmp_path / "bad.pth"
    torch.save({"model": {"something.else": torch.ones(1)}}, path)
    out = tmp_path / "out.safetensors"
    assert main([str(path), str(out)]) == 1
    assert "something.else" in capsys.readouterr().err
    assert not out.exists()


def test_coco_panoptic_class_list_is_fcclips():
    entries = yaml.safe_load(COCO_PANOPTIC_CLASSES.read_text())["classes"]
    assert len(entries) == 133 and sum(entry["thing"] for entry in entries) == 80
    assert [entry["thing"] for entry in entries] == [True] * 80 + [False] * 53  # things first, as FC-CLIP
    assert [entry["id"] for entry in entries] == sorted(entry["id"] for entry in entries)
    names = read_class_names(COCO_PANOPTIC_CLASSES)
    assert len(set(names)) == 133
    assert names[0].startswith("person,child,girl") and names[-1] == "rug"


def test_class_list_errors_name_the_file(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("- mug\n- cup\n")
    with pytest.raises(ConversionError, match="classes.yaml: not a class list"):
        read_class_names(path)


def test_command_writes_fcclip_text_settings_by_default(tmp_path, capsys):
    # A small model in FC-CLIP's layout (the project's tiny CLIP): the command end to end in seconds.
    cfg = small_config(pmp=False, pixel_decoder="msdeform")
    fcclip = write_fcclip_checkpoint(tmp_path / "fcclip.pth", cfg)
    out = tmp_path / "converted.safetensors"
    assert main([str(fcclip), str(out), "--clip-model", cfg.clip.model_name]) == 0, capsys.readouterr().err
    _, converted, _ = read_checkpoint(out)
    assert converted.train_classes == read_class_names(COCO_PANOPTIC_CLASSES)
    assert converted.clip.templates == FCCLIP_TEMPLATES
    assert converted.decoder.pmp and converted.clip.pretrained is None
    assert "133 training classes" in capsys.readouterr().out
