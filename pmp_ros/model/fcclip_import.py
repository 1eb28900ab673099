"""Convert an FC-CLIP detectron2 checkpoint (bytedance/fc-clip, `.pth` with a "model" dict) to pmp_ros.

The head's parameter names mirror FC-CLIP's, so the conversion is a renaming table (docs/fcclip.md):

    sem_seg_head.pixel_decoder.*   -> head: pixel_decoder.*
    sem_seg_head.predictor.*       -> head: predictor.*
    void_embedding.weight          -> segmenter: void_embedding.weight
    backbone.clip_model.*          -> the open_clip model's own keys (prefix stripped)
    criterion.empty_weight         -> dropped (loss buffer, rebuilt from the config)

PMP layers (`predictor.prompt_attention_layers.*`) do not exist in FC-CLIP; they are added with the
project's initialisation, whose zero output projection makes them the identity, so the converted model
reproduces FC-CLIP until PMP is fine-tuned. Any key that is not mapped, missing or mis-shaped is reported
by name and no output is written.

The converted config also carries what FC-CLIP's text side used: its 14 VILD templates and, as the training
classes (seen vs unseen in the ensemble), COCO panoptic's 133 classes with FC-CLIP's synonyms
(config/coco_panoptic_classes.yaml) unless --train-classes names another list.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import Tensor

from pmp_ros import paths
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.head import PMPHead
from pmp_ros.model.transformer_decoder import PromptAttentionLayer

# (pattern, target, replacement): the whole renaming table; the first match wins.
RENAME_RULES: tuple[tuple[str, str, str], ...] = (
    (r"^sem_seg_head\.(pixel_decoder\..+)$", "head", r"\1"),
    (r"^sem_seg_head\.(predictor\..+)$", "head", r"\1"),
    (r"^void_embedding\.weight$", "void", ""),
    (r"^backbone\.clip_model\.(.+)$", "backbone", r"\1"),
    (r"^criterion\.empty_weight$", "drop", ""),
)
PMP_PREFIX = "predictor.prompt_attention_layers."
ENCODER_LEVELS = 3
FCCLIP_DEFORMABLE_POINTS = 4  # hard-coded in FC-CLIP's pixel decoder
# FC-CLIP's text templates (VILD_PROMPT in fcclip/fcclip.py, bytedance/fc-clip @ 2b0bbe2): its classifier's
# class embeddings average over these, so the converted model encodes text the same way.
FCCLIP_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)
# The classes the public checkpoints were trained on, as FC-CLIP names them (synonyms comma-separated).
COCO_PANOPTIC_CLASSES_FILE = "coco_panoptic_classes.yaml"


class ConversionError(ValueError):
    """The checkpoint does not match the expected FC-CLIP layout; the message names the keys."""


@dataclass
class ConvertedFCCLIP:
    head_state_dict: dict[str, Tensor]  # strict for PMPHead(cfg, in_channels, clip_dim, text_width)
    void_embedding: Tensor  # [1, D]
    backbone_state_dict: dict[str, Tensor]  # open_clip model keys
    cfg: ModelConfig
    in_channels: dict[str, int]
    clip_dim: int
    text_width: int | None
    dropped: list[str] = field(default_factory=list)


def rename_fcclip_keys(
    fc_sd: Mapping[str, Tensor],
) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Tensor], list[str]]:
    """Apply RENAME_RULES: (head_sd, void_embedding, backbone_sd, dropped keys). Unmapped keys raise."""
    head, backbone, dropped, unmapped = {}, {}, [], []
    void = None
    for key, value in fc_sd.items():
        value = torch.as_tensor(value)  # detectron2 checkpoints may hold numpy arrays
        for pattern, target, repl in RENAME_RULES:
            if re.match(pattern, key):
                if target == "head":
                    head[re.sub(pattern, repl, key)] = value
                elif target == "backbone":
                    backbone[re.sub(pattern, repl, key)] = value
                elif target == "void":
                    void = value
                else:
                    dropped.append(key)
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ConversionError(f"{len(unmapped)} key(s) have no mapping: {sorted(unmapped)}")
    return head, void, backbone, dropped


def infer_config(
    head_sd: Mapping[str, Tensor], base: ModelConfig | None = None
) -> tuple[ModelConfig, dict[str, int], int]:
    """Read the head's sizes off the tensor shapes: (cfg, in_channels res2..res5, clip_dim).

    Head counts are not visible in shapes: the deformable encoder's follows from its attention-weight rows
    (heads * 3 levels * 4 points), and FC-CLIP uses the same NHEADS in the decoder.
    """
    cfg = copy.deepcopy(base) if base is not None else ModelConfig()
    try:
        pd, pr = "pixel_decoder.", "predictor."
        in_channels = {
            "res5": head_sd[pd + "input_proj.0.0.weight"].shape[1],
            "res4": head_sd[pd + "input_proj.1.0.weight"].shape[1],
            "res3": head_sd[pd + "input_proj.2.0.weight"].shape[1],
            "res2": head_sd[pd + "adapter_1.weight"].shape[1],
        }
        enc = pd + "transformer.encoder.layers."
        p = cfg.pixel_decoder
        p.name = "msdeform"
        p.mask_dim, p.conv_dim = head_sd[pd + "mask_features.weight"].shape[:2]
        p.num_encoder_layers = _count_layers(head_sd, enc)
        p.encoder_ffn_dim = head_sd[enc + "0.linear1.weight"].shape[0]
        p.num_points = FCCLIP_DEFORMABLE_POINTS
        p.num_heads = head_sd[enc + "0.self_attn.attention_weights.weight"].shape[0] // (
            ENCODER_LEVELS * FCCLIP_DEFORMABLE_POINTS
        )
        d = cfg.decoder
        d.num_queries, d.hidden_dim = head_sd[pr + "query_feat.weight"].shape
        d.num_heads = p.num_heads
        d.ffn_dim = head_sd[pr + "transformer_ffn_layers.0.linear1.weight"].shape[0]
        d.num_layers = _count_layers(head_sd, pr + "transformer_ffn_layers.")
        d.enforce_input_proj = (pr + "input_proj.0.weight") in head_sd and p.conv_dim == d.hidden_dim
        clip_dim = head_sd[pr + "class_embed.layers.2.weight"].shape[0]
    except KeyError as e:
        raise ConversionError(f"not an FC-CLIP head: missing {e.args[0]!r}") from None
    return cfg, {k: int(v) for k, v in in_channels.items()}, int(clip_dim)


def _count_layers(sd: Mapping[str, Tensor], prefix: str) -> int:
    ids = {int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)}
    if not ids:
        raise KeyError(prefix + "0")
    return max(ids) + 1


def convert_fcclip_state_dict(
    fc_sd: Mapping[str, Tensor],
    text_width: int | None = None,
    base_cfg: ModelConfig | None = None,
    pmp: bool = True,
    seed: int = 0,
) -> ConvertedFCCLIP:
    """FC-CLIP's `checkpoint["model"]` -> the project's head / void / backbone state dicts and config.

    text_width: the CLIP text width W_t for the PMP layers; read from `backbone.clip_model.ln_final.weight`
    when the checkpoint has the backbone. The PMP layers are initialised from `seed` (identity blocks).
    Raises ConversionError naming unmapped, missing, unexpected or mis-shaped keys.
    """
    head_sd, void, backbone_sd, dropped = rename_fcclip_keys(fc_sd)
    if void is None:
        raise ConversionError("missing key 'void_embedding.weight'")
    cfg, in_channels, clip_dim = infer_config(head_sd, base_cfg)
    cfg.decoder.pmp = pmp
    if text_width is None and "ln_final.weight" in backbone_sd:
        text_width = int(backbone_sd["ln_final.weight"].shape[0])
    if pmp and text_width is None:
        raise ConversionError("PMP needs the CLIP text width: pass text_width (no backbone keys to read it from)")
    # Names and shapes the project expects, without allocating or initialising the full head.
    with torch.device("meta"):
        expected = PMPHead(cfg, in_channels, clip_dim, text_width).state_dict()
    expected_fc = {k: v for k, v in expected.items() if not k.startswith(PMP_PREFIX)}
    _check_keys(head_sd, expected_fc, "head")
    if tuple(void.shape) != (1, clip_dim):
        raise ConversionError(f"void_embedding.weight has shape {tuple(void.shape)}, expected (1, {clip_dim})")
    out = {k: v.detach().to(torch.float32).contiguous() for k, v in head_sd.items()}
    if pmp:
        out.update(_fresh_pmp_state(cfg, text_width, seed))
        _check_keys(out, expected, "head with PMP")
    return ConvertedFCCLIP(
        head_state_dict=out,
        void_embedding=void.detach().to(torch.float32).contiguous(),
        backbone_state_dict={k: v.detach().contiguous() for k, v in backbone_sd.items()},
        cfg=cfg,
        in_channels=in_channels,
        clip_dim=clip_dim,
        text_width=text_width,
        dropped=dropped,
    )


def _fresh_pmp_state(cfg: ModelConfig, text_width: int, seed: int) -> dict[str, Tensor]:
    """The project's PMP initialisation (zero output projection = identity), reproducible from seed."""
    state = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(cfg.decoder.num_layers):
            layer = PromptAttentionLayer(cfg.decoder.hidden_dim, cfg.decoder.pmp_num_heads, text_width)
            state.update({f"{PMP_PREFIX}{i}.{k}": v for k, v in layer.state_dict().items()})
    return state


def _check_keys(got: Mapping[str, Tensor], expected: Mapping[str, Tensor], what: str) -> None:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(
        f"{k}: {tuple(got[k].shape)} vs expected {tuple(expected[k].shape)}"
        for k in set(got) & set(expected)
        if tuple(got[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if unexpected:
        problems.append(f"unexpected {unexpected}")
    if mismatched:
        problems.append(f"mis-shaped {mismatched}")
    if problems:
        raise ConversionError(f"{what}: " + "; ".join(problems))


def check_backbone_state_dict(backbone_sd: Mapping[str, Tensor], model_name: str) -> None:
    """Compare against the open_clip model `model_name` built on the meta device (no weights, no download)."""
    import open_clip

    with torch.device("meta"):
        model = open_clip.create_model(model_name, pretrained=None, device="meta")
    _check_keys(backbone_sd, model.state_dict(), f"backbone ({model_name})")


def load_fcclip_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Tensor]:
    """Read FC-CLIP's `.pth` (a dict with "model") without detectron2. weights_only loading is used unless
    `trusted` (full unpickling, only for files from a source you trust)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as e:  # noqa: BLE001 - report why safe loading failed and how to proceed
        if trusted:
            raise
        raise ConversionError(
            f"{path}: safe (weights_only) loading failed ({type(e).__name__}: {e}); "
            "if you trust the file, rerun with --trusted"
        ) from e
    sd = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise ConversionError(f"{path}: expected a dict with a 'model' state dict")
    return sd


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """The `name` of every entry of a class list file (config/coco_panoptic_classes.yaml's format: a YAML
    mapping whose `classes` list holds one mapping per class; synonyms comma-separated in `name`)."""
    try:
        entries = yaml.safe_load(Path(path).read_text())["classes"]
        names = tuple(str(entry["name"]).strip() for entry in entries)
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ConversionError(
            f"{path}: not a class list (a YAML `classes` list of mappings with a `name`): {error}"
        ) from None
    if not names or not all(names):
        raise ConversionError(f"{path}: the class list is empty or has an empty name")
    return names


def build_converted_model(conv: ConvertedFCCLIP):
    """Assemble the PMPSegmenter from the converted state (contract in docs/architecture.md)."""
    import open_clip

    from pmp_ros.model.clip.backbone import ClipBackbone
    from pmp_ros.model.clip.text import ClipTextEncoder
    from pmp_ros.model.segmenter import PMPSegmenter

    clip_model = open_clip.create_model(conv.cfg.clip.model_name, pretrained=None)
    clip_model.load_state_dict(conv.backbone_state_dict, strict=True)
    tokenizer = open_clip.get_tokenizer(conv.cfg.clip.model_name)
    backbone = ClipBackbone(clip_model, frozen=conv.cfg.clip.frozen)
    text_encoder = ClipTextEncoder(clip_model, tokenizer, conv.cfg.clip.templates)
    model = PMPSegmenter(conv.cfg, backbone, text_encoder)
    model.head.load_state_dict(conv.head_state_dict, strict=True)
    with torch.no_grad():
        model.void_embedding.weight.copy_(conv.void_embedding)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pmp-convert-fcclip",
        description="Convert an FC-CLIP checkpoint (detectron2 .pth) to a pmp_ros checkpoint (.safetensors).",
    )
    parser.add_argument("input", type=Path, help="FC-CLIP checkpoint, e.g. fcclip_cocopan.pth")
    parser.add_argument("output", type=Path, help="pmp_ros checkpoint to write (.safetensors)")
    parser.add_argument("--clip-model", default="convnext_large_d_320", help="open_clip model name of the backbone")
    parser.add_argument("--no-pmp", action="store_true", help="build the prompt-free twin (no PMP layers)")
    parser.add_argument(
        "--train-classes",
        type=Path,
        default=paths.config_file(COCO_PANOPTIC_CLASSES_FILE),
        help="the classes the checkpoint was trained on (ensemble: alpha for these, beta for others), in "
        "config/coco_panoptic_classes.yaml's format (default: that file, FC-CLIP's COCO panoptic classes)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the added PMP layers")
    parser.add_argument("--trusted", action="store_true", help="allow full unpickling (trusted files only)")
    args = parser.parse_args(argv)

    try:
        fc_sd = load_fcclip_checkpoint(args.input, trusted=args.trusted)
        base = ModelConfig()
        base.clip.model_name = args.clip_model
        base.clip.pretrained = None  # the weights travel in the converted checkpoint
        base.clip.templates = FCCLIP_TEMPLATES
        base.train_classes = read_class_names(args.train_classes)
        conv = convert_fcclip_state_dict(fc_sd, base_cfg=base, pmp=not args.no_pmp, seed=args.seed)
        check_backbone_state_dict(conv.backbone_state_dict, args.clip_model)
    except ConversionError as e:
        print(f"pmp-convert-fcclip: {e}", file=sys.stderr)
        return 1
    print(
        f"mapped {len(conv.head_state_dict)} head tensors ({'with' if conv.cfg.decoder.pmp else 'without'} PMP), "
        f"{len(conv.backbone_state_dict)} backbone tensors; dropped {conv.dropped}; "
        f"{len(conv.cfg.train_classes)} training classes from {args.train_classes}"
    )
    model = build_converted_model(conv)
    from pmp_ros.model.checkpoint import save_checkpoint

    save_checkpoint(args.output, model, conv.cfg, {"source": f"FC-CLIP {args.input.name}"})
    # save_checkpoint writes through a private temporary file (0600): the output gets the mode a new file gets.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(args.output, 0o666 & ~umask)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
