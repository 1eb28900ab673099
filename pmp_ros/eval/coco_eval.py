"""pmp-eval coco: a model on real COCO-format data (a panoptic or instances json and its images), with the
published figures of the model it was converted from beside the measured ones.

    pmp-eval coco --json annotations/panoptic_val2017.json --images val2017 \\
        --model fcclip_pmp.safetensors --reference fcclip-coco [--max-images 500] [--out reports/coco]

Three measurements per image, all through the Predictor and the node's frame pipeline:
- semantic: every class of the json prompted at once, the Predictor's semantic map against the truth; mIoU
  over the classes present (metrics/semantic.py). A panoptic json's unlabelled pixels and crowd regions are
  ignored; an instances json's unlabelled pixels are "no object".
- panoptic: the same prediction's instances as segments, panoptic quality (metrics/panoptic.py).
- instructions: one instruction per class present in the image, asking for every instance of it (the
  fixed evaluation's plural targets), with the other classes as context: the model's prompted prediction
  (evaluate.prompted_predictions) through FramePipeline.process at the score threshold; F1 at IoU 0.5
  (metrics/frame_metrics.py) over all of them.

The reference column: FC-CLIP's published figures for its public ConvNeXt-Large checkpoint, the one
pmp-convert-fcclip converts (docs/fcclip.md), measured by FC-CLIP's own code (test resize to short side
800; ADE20K and COCO as panoptic sets). FC-CLIP publishes no instruction figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pmp_ros import paths
from pmp_ros.data.coco import CocoSegments, Segment
from pmp_ros.eval.evaluate import prompted_predictions
from pmp_ros.eval.metrics.frame_metrics import (
    FramePrediction,
    FrameTruth,
    aggregate_instruction_metrics,
    instruction_frame_metrics,
)
from pmp_ros.eval.metrics.panoptic import accumulate_pq, new_pq_stats, pq_metrics
from pmp_ros.eval.metrics.semantic import accumulate_confusion, new_confusion, semantic_metrics
from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.model.inference import Predictor
from pmp_ros.perception.frame import FrameInput, FramePipeline, FrameSettings

# The model-zoo table of FC-CLIP's README (github.com/bytedance/fc-clip at commit 2b0bbe2, row "FC-CLIP
# (ConvNeXt-Large)", the checkpoint fcclip_cocopan.pth that docs/fcclip.md converts), in percent.
# The table's mAP columns are left out: nothing here measures mask AP.
REFERENCE_SOURCE = "FC-CLIP README model zoo, FC-CLIP (ConvNeXt-Large) (bytedance/fc-clip @ 2b0bbe2)"


@dataclass(frozen=True)
class Reference:
    dataset: str
    miou: float | None = None
    pq: float | None = None


REFERENCES = {
    "fcclip-coco": Reference("COCO panoptic val2017 (FC-CLIP's training set)", miou=63.7, pq=54.4),
    "fcclip-ade20k": Reference("ADE20K A-150 panoptic val", miou=34.1, pq=26.8),
    "fcclip-cityscapes": Reference("Cityscapes panoptic val", miou=56.2, pq=44.0),
    "fcclip-mapillary": Reference("Mapillary Vistas panoptic val", miou=27.8, pq=18.3),
    "fcclip-a847": Reference("ADE20K-Full A-847 val", miou=14.8),
    "fcclip-pc59": Reference("Pascal Context 59 val", miou=58.4),
    "fcclip-pc459": Reference("Pascal Context 459 val", miou=18.2),
    "fcclip-pas21": Reference("Pascal VOC 21 val", miou=81.8),
    "fcclip-pas20": Reference("Pascal VOC 20 val", miou=95.4),
}


def present_classes(segments: Sequence[Segment], segment_image: np.ndarray) -> list[str]:
    """The classes with a visible, non-crowd segment in the image, in the order they first appear."""
    visible = np.bincount(segment_image.ravel(), minlength=len(segments) + 1)
    return list(dict.fromkeys(s.name for k, s in enumerate(segments) if not s.iscrowd and visible[k + 1]))


def _semantic_truth(names: Sequence[str], segment_image: np.ndarray, segments: Sequence[Segment], panoptic: bool):
    """(class index int [H,W], -1 = no object; ignored bool [H,W]): crowd regions, and a panoptic json's
    unlabelled pixels."""
    index = {n: i for i, n in enumerate(names)}
    lut = np.array([-1] + [index[s.name] for s in segments], np.int64)
    crowd = np.array([False] + [s.iscrowd for s in segments])
    ignored = crowd[segment_image]
    if panoptic:
        ignored |= segment_image == 0
    return lut[segment_image], ignored


def instruction_record(
    pipeline: FramePipeline,
    rgb: np.ndarray,
    segment_image: np.ndarray,
    segments: Sequence[Segment],
    name: str,
    prediction,
    score_threshold: float,
) -> dict:
    """instruction_frame_metrics of "every <name>" in one image, given the model's prediction for the prompt
    (made at or below score_threshold), through the frame pipeline."""
    parsed = ParsedInstruction((name,), (True,))
    result = pipeline.process(FrameInput(rgb), parsed, FrameSettings(score_threshold), prediction=prediction)
    published = result.prediction
    found = FramePrediction(published.label_image, [(i.id, i.label, i.score) for i in published.instances], [])
    truth = FrameTruth(
        instance_image=segment_image,
        class_names={k + 1: s.name for k, s in enumerate(segments)},
        target_ids=tuple(k + 1 for k, s in enumerate(segments) if s.name == name and not s.iscrowd),
        centres={},
        prompts=(name,),
    )
    return instruction_frame_metrics(found, truth)


def run_coco(
    predictor: Predictor,
    dataset: CocoSegments,
    max_images: int | None = None,
    batch_size: int = 4,
    thresholds: Sequence[float] | None = None,
    semantic: bool = True,
    progress: bool = False,
) -> dict:
    """The measurements of the module docstring on the first max_images images (None = all).

    thresholds: the score thresholds the instructions are scored at (default: the predictor's); the model
    predicts once at the lowest, and each threshold cuts that prediction (tracking_stage.above_threshold:
    the same instances as predicting at it). semantic: False skips the semantic and panoptic pass (a sweep).
    Returns {"semantic", "panoptic" (None when semantic is False), "panoptic_json" (bool), "instruction":
    {threshold: aggregate}, "counts"}.
    """
    names = dataset.class_names
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    thresholds = (predictor.cfg.score_threshold,) if thresholds is None else tuple(thresholds)
    semantic_cfg = predictor.cfg
    instruction_cfg = dataclasses.replace(semantic_cfg, score_threshold=min(thresholds))
    pipeline = FramePipeline(predictor, names)
    confusion, pq_stats = new_confusion(len(names)), new_pq_stats()
    records: dict[float, list[dict]] = {t: [] for t in thresholds}
    if semantic:
        predictor.set_prompts(names)  # prompts in the json's order: semantic index = class index
    bar = tqdm(total=count, desc="coco", unit="image", disable=not progress)
    try:
        for start in range(0, count, batch_size):
            batch = [dataset[i] for i in range(start, min(start + batch_size, count))]
            if semantic:
                predictor.cfg = semantic_cfg
                for (_, segment_image, segments), pred in zip(batch, predictor.predict([b[0] for b in batch])):
                    truth, ignored = _semantic_truth(names, segment_image, segments, dataset.panoptic)
                    accumulate_confusion(confusion, truth[~ignored], pred.semantic[~ignored])
                    accumulate_pq(
                        pq_stats,
                        segment_image,
                        [s.name for s in segments],
                        [s.iscrowd for s in segments],
                        pred.label_image,
                        {i.id: i.label for i in pred.instances},
                        segment_image == 0 if dataset.panoptic else None,
                    )
            items = [(b, name) for b in batch for name in present_classes(b[2], b[1])]
            predictor.cfg = instruction_cfg
            for first in range(0, len(items), batch_size):
                chunk = items[first : first + batch_size]
                found = prompted_predictions(predictor, [b[0] for b, _ in chunk], [(n,) for _, n in chunk], names)
                for ((rgb, segment_image, segments), name), (prediction, _, _) in zip(chunk, found):
                    for t in thresholds:
                        records[t].append(
                            instruction_record(pipeline, rgb, segment_image, segments, name, prediction, t)
                        )
            bar.update(len(batch))
    finally:
        predictor.cfg = semantic_cfg
        bar.close()
    return {
        "semantic": semantic_metrics(confusion, names) if semantic else None,
        "panoptic": pq_metrics(pq_stats, set(dataset.thing_classes)) if semantic else None,
        "panoptic_json": dataset.panoptic,
        "instruction": {t: aggregate_instruction_metrics(r) for t, r in records.items()},
        "counts": {"images": count, "classes": len(names), "instructions": len(records[thresholds[0]])},
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def format_table(result: dict, reference: str | None) -> str:
    """The measured figures (percent) and the reference's (FC-CLIP's published ones, "-" where it has none
    or none was named), as a markdown table with a line on where the reference comes from."""
    ref = REFERENCES[reference] if reference else None
    pq = result["panoptic"]
    (instruction,) = result["instruction"].values()
    rows = [
        ("semantic mIoU", result["semantic"]["miou"], ref.miou if ref else None),
        ("PQ", pq["all"]["pq"] if result["panoptic_json"] else None, ref.pq if ref else None),
        ("PQ things", pq["things"]["pq"] if result["panoptic_json"] else None, None),
        ("PQ stuff", pq["stuff"]["pq"] if result["panoptic_json"] else None, None),
        ("instruction F1", instruction["all"]["f1"], None),
        ("instruction precision", instruction["all"]["precision"], None),
        ("instruction recall", instruction["all"]["recall"], None),
    ]
    header = f"reference ({reference})" if reference else "reference"
    lines = [f"| metric | measured | {header} |", "|---|---|---|"]
    for label, measured, published in rows:
        lines.append(f"| {label} | {_percent(measured)} | {'-' if published is None else f'{published:.1f}'} |")
    counts = result["counts"]
    lines.append("")
    lines.append(
        f"{counts['images']} images, {counts['classes']} classes, {counts['instructions']} instructions "
        f"(one per class present); {'panoptic' if result['panoptic_json'] else 'instances'} json"
        + ("" if result["panoptic_json"] else " (no PQ: an instances json has no stuff and overlapping masks)")
    )
    if ref:
        lines.append(f"reference: {ref.dataset}, {REFERENCE_SOURCE}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pmp-eval coco", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", required=True, type=Path, help="COCO panoptic or instances json")
    parser.add_argument("--images", type=Path, help="image folder (default: <json dir>/images)")
    parser.add_argument("--panoptic-dir", type=Path, help="a panoptic json's PNG folder (default: see CocoSegments)")
    parser.add_argument("--model", type=Path, default=paths.model_file("pmp_default.safetensors"))
    parser.add_argument(
        "--reference", choices=sorted(REFERENCES), help="published figures to print beside the measured ones"
    )
    parser.add_argument("--max-images", type=int, help="the first N images of the json (by id)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    parser.add_argument("--score-threshold", type=float, help="override the checkpoint's score threshold")
    parser.add_argument("--inference-size", type=int, nargs=2, metavar=("H", "W"), help="override the input size")
    parser.add_argument("--out", type=Path, help="also write coco_eval.json and coco_eval.md there")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    overrides = {}
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    if args.inference_size:
        overrides["size"] = tuple(args.inference_size)
    dataset = CocoSegments(
        str(args.json), args.images and str(args.images), args.panoptic_dir and str(args.panoptic_dir)
    )
    predictor, _ = Predictor.from_checkpoint(args.model, args.device, **overrides)
    start = time.perf_counter()
    result = run_coco(predictor, dataset, args.max_images, args.batch_size, progress=not args.no_progress)
    result["instruction"] = {str(k): v for k, v in result["instruction"].items()}
    result["setup"] = {
        "command": shlex.join(["pmp-eval", "coco", *(argv if argv is not None else sys.argv[1:])]),
        "model": str(args.model),
        "json": str(args.json),
        "reference": args.reference,
        "inference": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(predictor.cfg).items()},
        "device": str(predictor.device),
        "seconds": time.perf_counter() - start,
    }
    table = format_table(result, args.reference)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "coco_eval.json").write_text(json.dumps(result, indent=1))
        (args.out / "coco_eval.md").write_text(f"{table}\n\nCommand: `{result['setup']['command']}`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
