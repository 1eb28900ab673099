"""Accuracy of pmp_ros.objects3d (centroid, box size, normal) against the procedural world's ground truth.

    python -m pmp_ros.eval.objects3d --scenes 100 [--split validation] [--min-area 200] [--json out.json]

Scenes: scene i of the split renders its seed as pmp-eval does (320x240, the cluttered world iff
evaluate.is_cluttered(i, 0.5)). Every object's ground-truth visible mask (Scene.mask) is measured with
measure_objects on the scene's noisy depth (dropouts and per-pixel noise), with the scene's K. The world
has no mixed pixels at object edges (every pixel is one ray-plane hit), so the erosion's benefit does not
show here, only its cost. Truths:

- centroid: SceneObject.visible_center_cam, the mean of the visible pixels' noise-free points. That is the
  quantity the robust centroid estimates; its erosion and outlier rejection are means, not the target, so
  the shift they cause (a few mm where the erosion takes off a thin side strip) counts as error, as it
  would for the robot. The same estimator on the noise-free depth (depth_gt) is reported beside it
  (centroid_noise_m): the part of the error the sensor noise causes, with the estimator's bias left out.
- box size: the object is a prism (its shape's outline, yaw, radius_m, extruded height_m from base_m), so
  its true extent along each estimated box axis is the spread of its corners along that axis; the error is
  estimated size - true extent, per axis. Only for objects occluded <= UNOCCLUDED and not cut by the image
  border: the box of a partly visible object cannot be its full size. Single view: the back faces and the
  bottom are never seen, and thin objects show few side pixels, so the smallest extent (the height, for
  flat objects) is measured from a few side pixels.
- normal: the true normal of the face the normal pixel lies on (from depth_gt: the top face is where the
  point's height is base_m + height_m, its normal the table plane's n; otherwise the front-facing side of
  the outline edge nearest the point). A normal pixel on or next to a crease has a window mostly on the
  other face now and then; the estimate is then that face's normal, some 90 degrees off this truth.

Summaries (median, p90) cover objects with visible_area >= --min-area (the issue's goals: centroid median
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
from pmp_ros.data.shapes import edge_table
from pmp_ros.data.world import Scene, SceneObject, TabletopWorld, WorldConfig
from pmp_ros.eval.evaluate import IMAGE_SIZE, SPLITS, is_cluttered
from pmp_ros.objects3d import DEFAULT_PARAMS, Object3D, Objects3DParams, measure_objects

MIN_AREA = 200  # px: the goals are stated on objects at least this large
UNOCCLUDED = 0.02  # occlusion up to which an object's box is compared with its full size
TOP_FACE_TOLERANCE_M = 0.0005  # noise-free points within this of the top face's height are on it
CLUTTERED_FRACTION = 0.5
GOALS = {"centroid_error_m": 0.01, "normal_error_deg": 10.0}  # medians


def world_scenes(num_scenes: int, split: str = "validation", offset: int = 0):
    """(index, Scene) of scenes offset .. offset+num_scenes-1 of a split, rendered as pmp-eval does."""
    width, height = IMAGE_SIZE
    worlds = {False: TabletopWorld(width, height), True: TabletopWorld(width, height, WorldConfig.cluttered())}
    for i, seed in enumerate(splits.seeds(SPLITS[split], num_scenes, offset), start=offset):
        yield i, worlds[is_cluttered(i, CLUTTERED_FRACTION)].render(seed)


def prism_corners(scene: Scene, obj: SceneObject) -> np.ndarray:
    """Camera-frame corners float64 [2N,3] of the object's prism (outline vertices at its bottom, then top)."""
    outline = _world_outline(scene, obj)[0]
    top = obj.base_m + obj.height_m
    corners = np.concatenate([np.c_[outline, np.full(len(outline), z)] for z in (obj.base_m, top)])
    return corners @ scene.world_to_camera[:3, :3].T + scene.world_to_camera[:3, 3]


def true_normal(scene: Scene, obj: SceneObject, u: int, v: int) -> tuple[np.ndarray, str] | None:
    """(camera-frame unit normal, "top" or "side") of the face seen at pixel (u, v); None without a
    noise-free depth there. A side is the front-facing one (as the world draws them) whose outline edge is
    nearest the point."""
    z = float(scene.depth_gt[v, u])
    if not z > 0:
        return None
    k = scene.K
    point = np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z])
    rotation, translation = scene.world_to_camera[:3, :3], scene.world_to_camera[:3, 3]
    world = rotation.T @ (point - translation)
    if abs(world[2] - (obj.base_m + obj.height_m)) <= TOP_FACE_TOLERANCE_M:
        return np.asarray(scene.table_plane[0], dtype=np.float64), "top"
    starts, following, normals = _world_outline(scene, obj)
    ends = starts[following]
    camera_xy = (-rotation.T @ translation)[:2]
    front = np.einsum("ij,ij->i", normals, camera_xy - (starts + ends) / 2) > 0
    along = np.clip(np.einsum("ij,ij->i", world[:2] - starts, ends - starts) / ((ends - starts) ** 2).sum(1), 0, 1)
    distance = np.linalg.norm(starts + along[:, None] * (ends - starts) - world[:2], axis=1)
    side = normals[int(np.argmin(np.where(front, distance, np.inf)))]
    return rotation @ np.array([side[0], side[1], 0.0]), "side"


def evaluate_scene(scene: Scene, params: Objects3DParams = DEFAULT_PARAMS) -> list[dict]:
    """One record per object of the scene (module docstring): ids, area, occlusion, errors (None where the
    estimate or the truth is missing)."""
    masks = [scene.mask(o.id) for o in scene.objects]
    ids = [o.id for o in scene.objects]
    k = scene.K.matrix()
    measured = measure_objects(masks, scene.depth, k, instance_ids=ids, params=params)
    noise_free = measure_objects(masks, scene.depth_gt, k, instance_ids=ids, params=params)
    height, width = scene.depth.shape
    records = []
    for obj, estimate, clean in zip(scene.objects, measured, noise_free):
        x0, y0, x1, y1 = obj.bbox
        whole = obj.occlusion <= UNOCCLUDED and x0 > 0 and y0 > 0 and x1 < width and y1 < height
        records.append(
            {
                "seed": scene.seed,
                "id": obj.id,
                "shape": obj.shape,
                "visible_area": obj.visible_area,
                "occlusion": obj.occlusion,
                "num_points": estimate.num_points,
                "centroid_error_m": _distance(estimate.centroid, obj.visible_center_cam),
                "centroid_noise_m": _distance(estimate.centroid, clean.centroid),
                **_normal_record(scene, obj, estimate),
                "size_error_m": _size_error(scene, obj, estimate) if whole else None,
            }
        )
    return records


def summarise(records: list[dict], min_area: int = MIN_AREA) -> dict:
    """Medians and p90s over the records with visible_area >= min_area, with counts, and the goals."""
    large = [r for r in records if r["visible_area"] >= min_area]
    sized = [r for r in large if r["size_error_m"] is not None]
    size_errors = np.array([r["size_error_m"] for r in sized]).reshape(-1, 3)
    summary = {
        "objects": len(large),
        "without_centroid": sum(r["centroid_error_m"] is None for r in large),
        "centroid_error_m": _stats([r["centroid_error_m"] for r in large]),
        "centroid_noise_m": _stats([r["centroid_noise_m"] for r in large]),
        "normal_error_deg": _stats([r["normal_error_deg"] for r in large]),
        "normal_error_deg_top_face": _stats([r["normal_error_deg"] for r in large if r["normal_face"] == "top"]),
        "normal_error_deg_side_face": _stats([r["normal_error_deg"] for r in large if r["normal_face"] == "side"]),
        "size_max_abs_error_m": _stats(list(np.abs(size_errors).max(1))),
        "size_signed_error_median_m": [float(x) for x in np.median(size_errors, 0)] if len(sized) else None,
    }
    summary["goals"] = {
        name: {
            "median_at_most": limit,
            "met": summary[name]["median"] is not None and summary[name]["median"] <= limit,
        }
        for name, limit in GOALS.items()
    }
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
        ("centroid_error_m", "centroid vs visible centroid (mm)", 1e3),
        ("centroid_noise_m", "centroid vs same on noise-free (mm)", 1e3),
        ("normal_error_deg", "normal (deg)", 1.0),
        ("normal_error_deg_top_face", "  on top faces (deg)", 1.0),
        ("normal_error_deg_side_face", "  on side faces (deg)", 1.0),
        ("size_max_abs_error_m", "box size, worst axis (mm)", 1e3),
    ]
    for key, label, scale in rows:
        stats = summary[key]
        cells = [f"{stats[q] * scale:9.2f}" if stats[q] is not None else f"{'-':>9s}" for q in ("median", "p90")]
        lines.append(f"{label:34s} {stats['n']:5d} {' '.join(cells)}")
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


def _world_outline(scene: Scene, obj: SceneObject) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices float64 [N,2], next int [N], outward unit edge normals float64 [N,2]) of the object's outline
    (shapes.edge_table) in world xy: scaled by its radius, turned by its yaw, at its position."""
    rotation, translation = scene.world_to_camera[:3, :3], scene.world_to_camera[:3, 3]
    # center_cam is the outline's origin at the top face's height (world.py's _measure).
    origin = rotation.T @ (np.asarray(obj.center_cam) - translation)
    vertices, following, normals, _ = edge_table(obj.shape)
    yaw = np.array([[np.cos(obj.yaw), -np.sin(obj.yaw)], [np.sin(obj.yaw), np.cos(obj.yaw)]])
    return vertices @ (yaw.T * obj.radius_m) + origin[:2], following, normals @ yaw.T


def _normal_record(scene: Scene, obj: SceneObject, estimate: Object3D) -> dict:
    truth = true_normal(scene, obj, *estimate.normal_pixel)
    if truth is None or estimate.normal is None:
        return {"normal_face": truth and truth[1], "normal_error_deg": None}
    cosine = float(np.clip(np.dot(estimate.normal, truth[0]), -1.0, 1.0))
    return {"normal_face": truth[1], "normal_error_deg": float(np.degrees(np.arccos(cosine)))}


def _size_error(scene: Scene, obj: SceneObject, estimate: Object3D) -> list[float] | None:
    """Estimated size - the prism's extent along each estimated box axis, metres [3]."""
    if estimate.box is None:
        return None
    along = prism_corners(scene, obj) @ estimate.box.rotation()
    return [float(x) for x in np.asarray(estimate.box.size) - np.ptp(along, axis=0)]


def _distance(a, b) -> float | None:
    return None if a is None or b is None else float(np.linalg.norm(np.subtract(a, b)))


def _stats(values: list) -> dict:
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    if present.size == 0:
        return {"n": 0, "median": None, "p90": None}
    return {"n": int(present.size), "median": float(np.median(present)), "p90": float(np.percentile(present, 90))}


if __name__ == "__main__":
    sys.exit(main())
