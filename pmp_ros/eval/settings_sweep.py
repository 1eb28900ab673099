"""pmp-eval sweep: choose the node's inference settings for a model on a user's validation split (COCO
format) and write them into a copy of the checkpoint, where the node reads them ("(checkpoint)" in its log).

    pmp-eval sweep --json val/panoptic.json --images val/images --model fcclip_pmp.safetensors \\
        --out fcclip_pmp_tuned.safetensors [--thresholds 0.2 0.3 0.4 0.5 0.6] [--alpha 0.3 0.4] [--beta 0.7 0.8]

A grid over the score threshold and, where given, the ensemble's alpha and beta (model config `ensemble`:
the weight of the CLIP classifier for classes seen in training and for the others); each point is scored by
the instruction F1 of pmp-eval coco (one instruction per class present in each image). Per (alpha, beta) the
model predicts once at the lowest threshold and each threshold cuts that prediction (coco_eval.run_coco).
The best F1 wins, ties to the earlier grid point (lower alpha, beta, threshold). The copy has the same
weights; only `inference.score_threshold` and `ensemble.alpha` / `ensemble.beta` change, and its metadata
holds the whole grid (`settings_sweep`). Choose on a validation split, never on the set you report.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import shlex
import sys
from pathlib import Path

from pmp_ros.data.coco import CocoSegments
from pmp_ros.eval.coco_eval import run_coco
from pmp_ros.model.checkpoint import save_checkpoint
from pmp_ros.model.inference import Predictor

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def sweep(
    predictor: Predictor,
    model_cfg,
    dataset: CocoSegments,
    thresholds: tuple[float, ...],
    alphas: tuple[float, ...],
    betas: tuple[float, ...],
    max_images: int | None = None,
    batch_size: int = 4,
) -> list[dict]:
    """One row per grid point: {alpha, beta, score_threshold, f1, precision, recall}, in grid order. The
    predictor's segmenter config is left as it was."""
    rows = []
    original = predictor.segmenter.cfg
    try:
        for alpha, beta in itertools.product(alphas, betas):
            ensemble = dataclasses.replace(model_cfg.ensemble, alpha=alpha, beta=beta)
            predictor.segmenter.cfg = dataclasses.replace(model_cfg, ensemble=ensemble)
            result = run_coco(predictor, dataset, max_images, batch_size, thresholds, semantic=False)
            for threshold in sorted(thresholds):
                summary = result["instruction"][threshold]["all"]
                rows.append(
                    {
                        "alpha": alpha,
                        "beta": beta,
                        "score_threshold": threshold,
                        **{k: summary[k] for k in ("f1", "precision", "recall", "tp", "fp", "fn")},
                    }
                )
    finally:
        predictor.segmenter.cfg = original
    return rows


def best_row(rows: list[dict]) -> dict:
    """The row with the highest F1 (None counts as 0: nothing to find and nothing found), the first on ties."""
    return max(rows, key=lambda r: r["f1"] or 0.0)


def format_rows(rows: list[dict], chosen: dict) -> str:
    lines = ["| alpha | beta | score_threshold | F1 | precision | recall |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]:.3f}" if r[k] is not None else "-" for k in ("f1", "precision", "recall")]
        mark = " (chosen)" if r is chosen else ""
        lines.append(f"| {r['alpha']} | {r['beta']} | {r['score_threshold']}{mark} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmp-eval sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, type=Path, help="the validation split: COCO panoptic or instances")
    parser.add_argument("--images", type=Path, help="image folder (default: <json dir>/images)")
    parser.add_argument("--panoptic-dir", type=Path)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the copy with the chosen settings")
    parser.add_argument("--thresholds", type=float, nargs="+", default=DEFAULT_THRESHOLDS)
    parser.add_argument("--alpha", type=float, nargs="+", help="ensemble alphas (default: the checkpoint's)")
    parser.add_argument("--beta", type=float, nargs="+", help="ensemble betas (default: the checkpoint's)")
    parser.add_argument("--max-images", type=int)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.model.resolve():
        parser.error("--out must differ from --model (the sweep writes a copy)")
    if not all(0.0 <= t <= 1.0 for t in args.thresholds):
        parser.error("--thresholds must lie in [0, 1]")

    dataset = CocoSegments(
        str(args.json), args.images and str(args.images), args.panoptic_dir and str(args.panoptic_dir)
    )
    predictor, model_cfg = Predictor.from_checkpoint(args.model, args.device)
    alphas = tuple(args.alpha or (model_cfg.ensemble.alpha,))
    betas = tuple(args.beta or (model_cfg.ensemble.beta,))
    rows = sweep(predictor, model_cfg, dataset, tuple(args.thresholds), alphas, betas, args.max_images, args.batch_size)
    chosen = best_row(rows)
    print(format_rows(rows, chosen))
    cfg = dataclasses.replace(
        model_cfg,
        inference=dataclasses.replace(model_cfg.inference, score_threshold=chosen["score_threshold"]),
        ensemble=dataclasses.replace(model_cfg.ensemble, alpha=chosen["alpha"], beta=chosen["beta"]),
    )
    predictor.segmenter.cfg = cfg  # the ensemble reads its settings from the model's config
    command = shlex.join(["pmp-eval", "sweep", *(argv if argv is not None else sys.argv[1:])])
    save_checkpoint(
        args.out,
        predictor.segmenter,
        cfg,
        {"source": str(args.model), "settings_sweep": {"command": command, "chosen": chosen, "grid": rows}},
    )
    print(
        f"wrote {args.out}: score_threshold {chosen['score_threshold']}, alpha {chosen['alpha']}, "
        f"beta {chosen['beta']} (F1 {chosen['f1'] if chosen['f1'] is None else round(chosen['f1'], 3)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
