"""Copy a trained checkpoint to where the node looks for it, with inference settings chosen on validation.

    python -m pmp_ros.train.ship_model runs/pmp_s0/model.safetensors models/pmp_default.safetensors \
        --score-threshold 0.15

The weights are copied unchanged; only the inference section of the embedded config is replaced.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pmp_ros.model.checkpoint import save_checkpoint
from pmp_ros.model.segmenter import load_segmenter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--score-threshold", type=float, required=True)
    args = parser.parse_args(argv)
    model, cfg = load_segmenter(args.source)
    cfg = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, score_threshold=args.score_threshold))
    save_checkpoint(args.target, model, cfg, {"source": str(args.source)})
    print(f"wrote {args.target} (score threshold {args.score_threshold})")


if __name__ == "__main__":
    main()
