"""Copy a trained checkpoint to where the node looks for it, with inference settings chosen on validation.

    python -m pmp_ros.train.ship_model runs/pmp_s0/model.safetensors models/pmp_default.safetensors \
        --set inference.score_threshold=0.15 ensemble.out_vocabulary=crop ensemble.alpha=0.8

The weights are copied unchanged; only the `inference` and `ensemble` sections of the embedded config
(settings that need no training) may change. `--crop-tower FILE` also attaches the image tower of FILE
(open_clip weights from `pmp-train-clip --crop-tower 1`, trained against this model's text tower) as the
crop classifier's own tower, with the crop windows it was trained on (its zoom and smallest side):

    python -m pmp_ros.train.ship_model runs/q32/model.safetensors runs/q32_tower.safetensors \
        --crop-tower runs/crop_tower/clip.safetensors --set inference.score_threshold=0.20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import yaml
from safetensors import safe_open

from pmp_ros.model.checkpoint import save_checkpoint
from pmp_ros.model.clip.registry import create_clip
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.segmenter import PMPSegmenter, load_segmenter

SECTIONS = ("inference", "ensemble")  # what a shipped copy may change without retraining


def with_settings(cfg: ModelConfig, settings: list[str]) -> ModelConfig:
    """cfg with `section.key=value` settings (values parsed as YAML scalars) of SECTIONS replaced."""
    values = cfg.to_dict()
    for item in settings:
        key, sep, value = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in SECTIONS or not name:
            raise SystemExit(f"bad setting {item!r}: expected one of {', '.join(s + '.KEY=VALUE' for s in SECTIONS)}")
        if name not in values[section]:
            raise SystemExit(f"unknown setting {key!r}; known: {', '.join(sorted(values[section]))}")
        values[section][name] = yaml.safe_load(value)
    return ModelConfig.from_dict(values)


def attach_crop_tower(model: PMPSegmenter, cfg: ModelConfig, tower: Path) -> ModelConfig:
    """Gives `model` the image tower of the open_clip weights `tower` for its crop classifier; returns cfg
    with ensemble.crop_tower on and the tower's crop windows. Refuses a tower trained for another purpose
    or against another text tower (its crop embeddings would not be comparable with this model's text)."""
    with safe_open(str(tower), framework="pt") as f:
        training = json.loads((f.metadata() or {}).get("training", "{}"))
    if not training.get("crop_tower"):
        raise SystemExit(f"{tower}: not a crop tower (train it with pmp-train-clip --crop-tower 1)")
    clip_model = create_clip(dataclasses.replace(cfg.clip, pretrained=str(tower)))[0]
    own_text = model.text_encoder.state_dict()
    shared = [(name, value) for name, value in clip_model.state_dict().items() if name in own_text]
    if not shared:
        raise SystemExit(f"{tower}: no text tower to compare with the model's")
    for name, value in shared:
        if not torch.equal(own_text[name].float(), value.float()):
            raise SystemExit(f"{tower}: its text tower differs from the model's ({name}); train it from that tower")
    model.attach_crop_tower(clip_model)
    ensemble = dataclasses.replace(
        cfg.ensemble, crop_tower=True, crop_zoom=float(training["zoom"]), crop_min_side=int(training["zoom_min_side"])
    )
    return dataclasses.replace(cfg, ensemble=ensemble)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="e.g. inference.score_threshold=0.15 ensemble.out_vocabulary=crop",
    )
    parser.add_argument(
        "--crop-tower", type=Path, help="open_clip weights of a crop tower (pmp-train-clip --crop-tower 1)"
    )
    args = parser.parse_args(argv)
    if not args.set and not args.crop_tower:
        parser.error("nothing to change: give --set and/or --crop-tower")
    model, cfg = load_segmenter(args.source)
    metadata = {"source": str(args.source)}
    if args.crop_tower:
        cfg = attach_crop_tower(model, cfg, args.crop_tower)
        metadata["crop_tower"] = str(args.crop_tower)
    cfg = with_settings(cfg, args.set)
    if cfg.ensemble.crop_tower != (model.crop_backbone is not None):
        raise SystemExit("ensemble.crop_tower follows the weights: attach a tower with --crop-tower instead")
    model.cfg = cfg  # the ensemble reads its settings from the model's config
    save_checkpoint(args.target, model, cfg, metadata)
    changes = [*args.set, *([f"crop tower {args.crop_tower}"] if args.crop_tower else [])]
    print(f"wrote {args.target} ({', '.join(changes)})")


if __name__ == "__main__":
    main()
