"""Accuracy of pmp_ros.objects3d (centroid, box size, normal) against the procedural world's ground truth.

    python -m pmp_ros.eval.objects3d --scenes 100 [--split validation] [--min-area 200] [--json out.json]

Scenes: scene i of the split renders its seed as pmp-eval does (320x240, the cluttered world iff
evaluate.is_cluttered(i, 0.5)). Every object's ground-truth visible mask (Scene.mask) is measured with
measure_objects on the scene's noisy depth (dropouts and per-pixel noise), with the scene's K. The world
has no mixed pixels at object edges (every pixel is one ray-plane hit), so the erosion's benefit does not
show here, only its cost. Errors and their truths: pmp_ros.eval.metrics.errors3d (centroid vs the visible centre, box
size vs the prism's extent where comparable, normal vs the face the normal pixel's ray meets first). Beside
them:

- centroid_noise_m: the distance from the estimate to the same estimator's centroid on the noise-free depth
  (depth_gt): the part of the centroid error the sensor noise causes, with the estimator's bias (the shift its
  erosion and outlier rejection cause: a few mm where the erosion takes off a thin side strip) left out.
- the normal's face ("top" or "side"). Single view: the back faces and the bottom are never seen, and thin
  objects show few side pixels, so the smallest box extent (the height, for flat objects) is measured from a
  few side pixels. A normal pixel on or next to a crease has a window mostly on the other face now and then;
  the estimate is then that face's normal, some 90 degrees off the truth.

Summaries (median, p90) cover objects with visible_area >= --min-area (errors3d.GOALS: centroid median
<= 1 cm and normal median <= 10 degrees there).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from pmp_ros.data import splits
from pmp_ros.data.prism import Prism
from pmp_ros.data.world import Scene, TabletopWorld, WorldConfig
from pmp_ros.eval.evaluate import IMAGE_SIZE, SPLITS, is_cluttered
from pmp_ros.eval.metrics.errors3d import (
    MIN_AREA,
    box_comparable,
    error_stats,
    error_summary,
    goals,
    measurement_errors,
)
from pmp_ros.objects3d import DEFAULT_PARAMS, Objects3DParams, measure_objects

CLUTTERED_FRACTION = 0.5


def world_scenes(num_scenes: int, split: str = "validation", offset: int = 0):
    """(index, Scene) of scenes offset .. offset+num_scenes-1 of a split, rendered as pmp-eval does."""
    width, height = IMAGE_SIZE
    worlds = {False: TabletopWorld(width, height), True: TabletopWorld(width, height, WorldConfig.cluttered())}
    for i, seed in enumerate(splits.seeds(SPLITS[split], num_scenes, offset), start=offset):
        yield i, worlds[is_cluttered(i, CLUTTERED_FRACTION)].render(seed)


def evaluate_scene(scene: Scene, params: Objects3DParams = DEFAULT_PARAMS) -> list[dict]:
    """One record per object of the scene (module docstring): ids, area, occlusion, the errors of
    errors3d.measurement_errors and centroid_noise_m (None where the estimate or the truth is missing)."""
    masks = [scene.mask(o.id) for o in scene.objects]
    ids = [o.id for o in scene.objects]
    k = scene.K.matrix()
    measured = measure_objects(masks, scene.depth, k, instance_ids=ids, params=params)
    noise_free = measure_objects(masks, scene.depth_gt, k, instance_ids=ids, params=params)
    height, width = scene.depth.shape
    records = []
    for obj, estimate, clean in zip(scene.objects, measured, noise_free):
        noise = None
        if estimate.centroid is not None and clean.centroid is not None:
            noise = float(np.linalg.norm(np.subtract(estimate.centroid, clean.centroid)))
        records.append(
            {
                "seed": scene.seed,
                "id": obj.id,
                "shape": obj.shape,
                "visible_area": obj.visible_area,
                "occlusion": obj.occlusion,
                "num_points": estimate.num_points,
                "centroid_noise_m": noise,
                **measurement_errors(
                    estimate,
                    obj.visible_center_cam,
                    Prism.of(scene, obj),
                    k,
                    box_whole=box_comparable(obj.occlusion, obj.bbox, (width, height)),
                    normal_on_object=True,  # the normal pixel of a mask is inside it
                ),
            }
        )
    return records


def summarise(records: list[dict], min_area: int = MIN_AREA) -> dict:
    """errors3d.error_summary over the records with visible_area >= min_area, with the count of objects and of
    those without a centroid, centroid_noise_m, the normal's error per face, and the goals."""
    large = [r for r in records if r["visible_area"] >= min_area]
    summary = {
        "objects": len(large),
        "without_centroid": sum(r["centroid_error_m"] is None for r in large),
        **error_summary(large),
        "centroid_noise_m": error_stats(r["centroid_noise_m"] for r in large),
        "normal_error_deg_top_face": error_stats(r["normal_error_deg"] for r in large if r["normal_face"] == "top"),
        "normal_error_deg_side_face": error_stats(r["normal_error_deg"] for r in large if r["normal_face"] == "side"),
    }
    summary["goals"] = goals(summary)
    return summary


def evaluate_objects3d(
    num_scenes: int,
    split: str = "validation",
    offset: int = 0,
    min_area: int = MIN_AREA,
    params: Objects3DParams = DEFAULT_PARAMS,
) -> dict:
    """JSON-able dict: setup, summary (summarise), records (one per object of every scene)."""
    records = [r for _, scene in world_scenes(num_scenes, split, offset) for r in evaluate_scene(scene, params)]
    first = SPLITS[split][offset]
    return {
        "setup": {
            "split": split,
            "num_scenes": num_scenes,
            "seeds": [first, first + num_scenes - 1],
            "image_size": list(IMAGE_SIZE),
            "cluttered_fraction": CLUTTERED_FRACTION,
            "min_area": min_area,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(params).items()},
        },
        "summary": summarise(records, min_area),
        "records": records,
    }


def format_summary(result: dict) -> str:
    """The summary as text lines: one row per error, median and p90, the goals."""
    summary, setup = result["summary"], result["setup"]
    lines = [
        f"{setup['num_scenes']} {setup['split']} scenes, {summary['objects']} objects of >= {setup['min_area']} px "
        f"({summary['without_centroid']} without a centroid)",
        f"{'error':34s} {'n':>5s} {'median':>9s} {'p90':>9s}",
    ]
    rows = [
        (summary["centroid_error_m"], "centroid vs visible centroid (mm)", 1e3),
        (summary["centroid_noise_m"], "centroid vs same on noise-free (mm)", 1e3),
        (summary["normal_error_deg"], "normal (deg)", 1.0),
        (summary["normal_error_deg_top_face"], "  on top faces (deg)", 1.0),
        (summary["normal_error_deg_side_face"], "  on side faces (deg)", 1.0),
        (summary["size_max_abs_error_m"], "box size, worst axis (mm)", 1e3),
        *[(stats, f"  |error| along axis {axis} (mm)", 1e3) for axis, stats in enumerate(summary["size_abs_error_m"])],
    ]
    for stats, label, scale in rows:
        cells = [f"{stats[q] * scale:9.2f}" if stats[q] is not None else f"{'-':>9s}" for q in ("median", "p90")]
        lines.append(f"{label:34s} {stats['count']:5d} {' '.join(cells)}")
    if summary["size_signed_error_median_m"] is not None:
        bias = ", ".join(f"{x * 1e3:+.1f}" for x in summary["size_signed_error_median_m"])
        lines.append(f"box size bias per axis (largest..smallest spread, median, mm): {bias}")
    for name, goal in summary["goals"].items():
        lines.append(f"goal median {name} <= {goal['median_at_most']}: {'met' if goal['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmp_ros.eval.objects3d", description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--split", choices=tuple(SPLITS), default="validation")
    parser.add_argument("--offset", type=int, default=0, help="first scene index in the split")
    parser.add_argument("--min-area", type=int, default=MIN_AREA, help="px: objects the summary covers")
    parser.add_argument("--json", type=Path, help="also write setup, summary and per-object records here")
    args = parser.parse_args(argv)
    result = evaluate_objects3d(args.scenes, args.split, args.offset, args.min_area)
    result["command"] = shlex.join(
        ["python", "-m", "pmp_ros.eval.objects3d", *(sys.argv[1:] if argv is None else argv)]
    )
    print(format_summary(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
