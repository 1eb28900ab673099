"""Random-valued FC-CLIP checkpoints: detectron2's layout (`{"model": state_dict}`), what pmp-convert-fcclip
reads, without downloading one.

    python test/helpers/fcclip_checkpoints.py fcclip_random.pth    # the public fcclip_cocopan's shapes (1.5 GB)

The values are the modules' own initialisation (open_clip's CLIP tower and text tower, pmp_ros's head), so a
converted model runs with realistic activation scales; the shapes are the public checkpoint's (the head's and
the void embedding's are checked against the 302 shapes the FC-CLIP fixture's manifest records). Tests use
small configs.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from pmp_ros.model.config import ModelConfig

MANIFEST = Path(__file__).resolve().parents[1] / "fixtures" / "fcclip-head" / "fixture_manifest.json"
# The manifest's entry with the public checkpoint's head and void-embedding shapes.
PUBLIC_CONFIG_KEY = "reference_full_fcclip_config (public checkpoints: fcclip_cocopan)"
COCO_PANOPTIC_CLASSES = 133  # the size of FC-CLIP's criterion.empty_weight is this + 1 (void)


def public_head_shapes() -> dict[str, list[int]]:
    """FC-CLIP key -> shape in the public fcclip_cocopan checkpoint, for the head (`sem_seg_head.*`) and
    `void_embedding.weight` (fixture manifest)."""
    return json.loads(MANIFEST.read_text())[PUBLIC_CONFIG_KEY]["head_state_dict_shapes"]


def public_fcclip_config() -> ModelConfig:
    """The public fcclip_cocopan model's config (FC-CLIP's fcclip_convnext_large_eval_coco.yaml): ConvNeXt-L
    CLIP, deformable pixel decoder with 6 encoder layers, 9 decoder layers, 250 queries, no PMP."""
    cfg = ModelConfig()
    cfg.clip.model_name = "convnext_large_d_320"
    p, d = cfg.pixel_decoder, cfg.decoder
    p.name, p.conv_dim, p.mask_dim, p.num_heads = "msdeform", 256, 256, 8
    p.num_encoder_layers, p.encoder_ffn_dim = 6, 1024
    d.hidden_dim, d.num_heads, d.ffn_dim, d.num_layers, d.num_queries = 256, 8, 2048, 9, 250
    d.pmp = False
    return cfg


def fcclip_state_dict(cfg: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """FC-CLIP's checkpoint["model"] for a model of cfg (its PMP setting is ignored: FC-CLIP has none)."""
    import open_clip

    from pmp_ros.model.clip.backbone import ClipBackbone
    from pmp_ros.model.clip.registry import register_project_configs
    from pmp_ros.model.head import PMPHead

    register_project_configs()  # cfg may name one of the project's small CLIP configs
    torch.manual_seed(seed)
    clip_model = open_clip.create_model(cfg.clip.model_name, pretrained=None)
    backbone = ClipBackbone(clip_model)
    head_cfg = copy.deepcopy(cfg)
    head_cfg.decoder.pmp = False
    head = PMPHead(head_cfg, backbone.out_channels, backbone.clip_dim)
    state = {f"sem_seg_head.{key}": value for key, value in head.state_dict().items()}
    state |= {f"backbone.clip_model.{key}": value for key, value in clip_model.state_dict().items()}
    state["void_embedding.weight"] = torch.randn(1, backbone.clip_dim)
    state["criterion.empty_weight"] = torch.ones(COCO_PANOPTIC_CLASSES + 1)
    return state


def write_fcclip_checkpoint(path: str | Path, cfg: ModelConfig, seed: int = 0) -> Path:
    """fcclip_state_dict(cfg, seed) saved as FC-CLIP's .pth at path."""
    path = Path(path)
    torch.save({"model": fcclip_state_dict(cfg, seed)}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a random-valued FC-CLIP checkpoint of the public shapes.")
    parser.add_argument("out", type=Path, help=".pth to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    state = fcclip_state_dict(public_fcclip_config(), args.seed)
    head = {
        key: list(value.shape)
        for key, value in state.items()
        if key.startswith("sem_seg_head.") or key == "void_embedding.weight"
    }
    if head != public_head_shapes():
        raise SystemExit("the head's shapes differ from the public checkpoint's (fixture manifest)")
    torch.save({"model": state}, args.out)
    parameters = sum(value.numel() for value in state.values())
    print(f"wrote {args.out}: {len(state)} tensors, {parameters / 1e6:.0f} M values")


if __name__ == "__main__":
    main()
