"""Copy a trained checkpoint to where the node looks for it, with inference settings chosen on validation.

    python -m pmp_ros.train.ship_model runs/pmp_s0/model.safetensors models/pmp_default.safetensors \
        --set inference.score_threshold=0.15 ensemble.out_vocabulary=crop ensemble.alpha=0.8

The weights are copied unchanged; only the `inference` and `ensemble` sections of the embedded config
(settings that need no training) may change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from pmp_ros.model.checkpoint import save_checkpoint
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.segmenter import load_segmenter

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument(
        "--set",
        nargs="+",
        required=True,
        metavar="SECTION.KEY=VALUE",
        help="e.g. inference.score_threshold=0.15 ensemble.out_vocabulary=crop",
    )
    args = parser.parse_args(argv)
    model, cfg = load_segmenter(args.source)
    cfg = with_settings(cfg, args.set)
    model.cfg = cfg  # the ensemble reads its settings from the model's config
    save_checkpoint(args.target, model, cfg, {"source": str(args.source)})
    print(f"wrote {args.target} ({' '.join(args.set)})")


if __name__ == "__main__":
    main()
