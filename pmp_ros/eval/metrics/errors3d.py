"""Errors of 3D measurements (pmp_ros.objects3d.Object3D) against the world's truths, and their summaries.

One definition for every evaluation that has the truths: the true masks of world scenes (eval/objects3d.py),
the model's matched targets in pmp-eval (frame_metrics.py) and the node's published objects in pmp-eval-bag.
Per object (camera optical frame, metres):

- centroid error: distance from the estimated centroid to the object's visible centre, the mean of its
  visible pixels' noise-free points (SceneObject.visible_center_cam): the quantity the robust centroid
  estimates.
- box size error: estimated size - the prism's extent along each estimated box axis (the spread of its
  corners along it), per axis (largest to smallest spread), only where the box is comparable with the
  object's full size (box_comparable: unoccluded, not cut by the image border).
- normal error: angle (degrees) between the estimated normal and the outward normal of the prism's face
  that the normal pixel's ray meets first (data.prism.Prism.face_seen), only where that pixel lies on the
  object's visible mask (elsewhere the surface seen there is another's).

Summaries: median and p90 with the count of values (error_stats), on the objects of >= MIN_AREA visible px for
the goals (GOALS, medians).
"""

from __future__ import annotations

import numpy as np

from pmp_ros.data.prism import Prism
from pmp_ros.objects3d import Object3D

MIN_AREA = 200  # px: the goals are stated on objects at least this large
UNOCCLUDED = 0.02  # occlusion up to which an object's box is compared with its full size
GOALS = {"centroid_error_m": 0.01, "normal_error_deg": 10.0}  # largest median that meets each goal


def box_comparable(occlusion: float | None, bbox: tuple[int, int, int, int], image_size: tuple[int, int]) -> bool:
    """Whether a box measured from an object's visible pixels can be compared with its full size: it is occluded
    at most UNOCCLUDED (None: unknown, so no) and its visible pixels' box (x0, y0, x1, y1), x1 and y1
    exclusive, does not touch the border of an image of image_size (width, height)."""
    x0, y0, x1, y1 = bbox
    width, height = image_size
    return occlusion is not None and occlusion <= UNOCCLUDED and x0 > 0 and y0 > 0 and x1 < width and y1 < height


def measurement_errors(
    estimate: Object3D | None,
    visible_centre,
    prism: Prism | None,
    k: np.ndarray | None,
    box_whole: bool,
    normal_on_object: bool,
) -> dict:
    """{centroid_error_m, size_error_m ([3] or None), normal_error_deg, normal_face ("top", "side" or None)} of
    one measurement (module docstring); None where the estimate (None: nothing measured) or the truth is
    missing. visible_centre: (x, y, z) or None; prism: the object's solid or None; k: 3x3 intrinsics (None:
    no normal truth); box_whole: box_comparable; normal_on_object: the normal pixel lies on the object's
    visible mask."""
    errors = dict.fromkeys(("centroid_error_m", "size_error_m", "normal_error_deg", "normal_face"))
    if estimate is None:
        return errors
    if estimate.centroid is not None and visible_centre is not None:
        errors["centroid_error_m"] = float(np.linalg.norm(np.subtract(estimate.centroid, visible_centre)))
    if prism is not None and box_whole and estimate.box is not None:
        along = prism.corners() @ estimate.box.rotation()  # [2N,3]: the corners along each box axis
        errors["size_error_m"] = [float(x) for x in np.asarray(estimate.box.size) - np.ptp(along, axis=0)]
    if prism is not None and k is not None and normal_on_object and estimate.normal is not None:
        u, v = estimate.normal_pixel
        face = prism.face_seen(np.linalg.solve(np.asarray(k, dtype=np.float64), [u, v, 1.0]))
        if face is not None:
            cosine = float(np.clip(np.dot(estimate.normal, face[0]), -1.0, 1.0))
            errors["normal_error_deg"], errors["normal_face"] = float(np.degrees(np.arccos(cosine))), face[1]
    return errors


def error_stats(values) -> dict:
    """{count, median, p90} of the values that are not None (median and p90 None without any)."""
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    if present.size == 0:
        return {"count": 0, "median": None, "p90": None}
    return {"count": int(present.size), "median": float(np.median(present)), "p90": float(np.percentile(present, 90))}


def error_summary(records: list[dict]) -> dict:
    """Statistics of records carrying measurement_errors' keys: centroid_error_m, normal_error_deg,
    size_abs_error_m (per box axis), size_max_abs_error_m (the worst axis of each box), all error_stats, and
    size_signed_error_median_m ([3], the per-axis bias; None without a comparable box)."""
    sizes = np.array([r["size_error_m"] for r in records if r["size_error_m"] is not None]).reshape(-1, 3)
    return {
        "centroid_error_m": error_stats(r["centroid_error_m"] for r in records),
        "normal_error_deg": error_stats(r["normal_error_deg"] for r in records),
        "size_abs_error_m": [error_stats(np.abs(sizes[:, axis])) for axis in range(3)],
        "size_max_abs_error_m": error_stats(np.abs(sizes).max(1)),
        "size_signed_error_median_m": [float(x) for x in np.median(sizes, 0)] if len(sizes) else None,
    }


def goals(summary: dict) -> dict:
    """Per goal of GOALS: {median_at_most, median, met} from an error_summary (met False without values)."""
    return {
        name: {
            "median_at_most": limit,
            "median": summary[name]["median"],
            "met": summary[name]["median"] is not None and summary[name]["median"] <= limit,
        }
        for name, limit in GOALS.items()
    }


def matched_summary(targets: list[dict]) -> dict:
    """3D errors of the matched targets among target records (frame_metrics): {"matched": error_summary and
    targets (how many matched), "matched_large": the same over those of >= MIN_AREA px, "min_area", "goals"
    (on the large ones)}."""
    matched = [t for t in targets if t["matched"]]
    large = [t for t in matched if t["area"] >= MIN_AREA]
    out = {
        "matched": {"targets": len(matched), **error_summary(matched)},
        "matched_large": {"targets": len(large), **error_summary(large)},
        "min_area": MIN_AREA,
    }
    out["goals"] = goals(out["matched_large"])
    return out
