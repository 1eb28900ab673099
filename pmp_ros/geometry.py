"""Where to act on a segmented instance: an interior pixel, its depth and its 3D point (numpy/OpenCV).

Conventions: pixel (u, v) = (column, row); depth images registered to the colour image; 3D points in the
camera's optical frame (x right, y down, z forward), metres. A depth reading outside the valid range
(DEPTH_RANGE_M unless a caller gives another) is no reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MM_PER_M = 1000.0
# Valid depth readings (metres, inclusive): nearer than depth cameras measure or farther than they reach is
# a sensor's error code (65535 mm), a wrap-around or a corrupt value (1e30 m), never an object.
DEPTH_RANGE_M = (0.05, 20.0)


@dataclass(frozen=True)
class PointEstimate:
    """u, v: interior pixel; position: (x, y, z) metres, or None without valid depth."""

    u: int
    v: int
    position: tuple[float, float, float] | None


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(u, v) of a mask pixel farthest from the mask's border (argmax of the distance transform).

    Always inside the mask, unlike the centroid (a ring's centroid is its hole). mask: bool [H,W],
    non-empty. Works on the mask's bounding box padded by one background pixel, so the cost follows the
    object's size, not the image's.
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        raise ValueError("interior_point of an empty mask")
    y0, y1, x0, x1 = rows[0], rows[-1], cols[0], cols[-1]
    crop = np.pad(mask[y0 : y1 + 1, x0 : x1 + 1].astype(np.uint8), 1)
    distance = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Elongated shapes have a ridge of equal maxima: take the ridge pixel nearest the ridge's mean, so
    # a bar gives its middle rather than one end.
    ys, xs = np.nonzero(distance >= distance.max() - 1e-3)
    best = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(x0 + xs[best] - 1), int(y0 + ys[best] - 1)


def depth_in_metres(depth: np.ndarray, valid_range: tuple[float, float] = DEPTH_RANGE_M) -> np.ndarray:
    """float32 [H,W] metres with NaN where invalid. uint16 input is millimetres (16UC1), float is metres
    (32FC1); NaN, inf and values outside valid_range (metres, inclusive; 0 and negative ones) are invalid."""
    if depth.dtype.kind == "u":
        metres = depth.astype(np.float32) / MM_PER_M
    elif depth.dtype.kind == "f":
        metres = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth must be uint16 (mm) or float (m), got {depth.dtype}")
    near, far = valid_range
    with np.errstate(invalid="ignore"):  # NaN compares False: it stays NaN
        metres[~((metres >= near) & (metres <= far))] = np.nan
    return metres


def depth_at(
    depth: np.ndarray,
    u: int,
    v: int,
    window: int = 5,
    mask: np.ndarray | None = None,
    valid_range: tuple[float, float] = DEPTH_RANGE_M,
) -> float | None:
    """Median valid depth (metres) in the window x window pixels around (u, v), restricted to `mask`
    (so background behind a thin object does not leak in); None when no pixel there is valid.

    depth: uint16 [H,W] mm or float [H,W] m (see depth_in_metres, which valid_range is passed to); mask:
    bool [H,W] or None.
    """
    half = window // 2
    y0, x0 = max(v - half, 0), max(u - half, 0)
    patch = depth_in_metres(depth[y0 : v + half + 1, x0 : u + half + 1], valid_range)
    if mask is not None:
        patch = np.where(mask[y0 : v + half + 1, x0 : u + half + 1], patch, np.nan)
    valid = patch[np.isfinite(patch)]
    return float(np.median(valid)) if valid.size else None


def backproject(u: float, v: float, z: float, k: np.ndarray) -> tuple[float, float, float]:
    """Pinhole back-projection of pixel (u, v) at depth z (metres); k: 3x3 intrinsics (row-major, as
    CameraInfo.k). Returns (x, y, z) in the optical frame."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    return float((u - cx) * z / fx), float((v - cy) * z / fy), float(z)


def has_intrinsics(k) -> bool:
    """Whether k (CameraInfo.k, 9 values) is a usable pinhole calibration: finite, fx and fy > 0. An
    uncalibrated camera publishes an all-zero k."""
    k = np.asarray(k, dtype=np.float64).reshape(-1)
    return k.size == 9 and bool(np.isfinite(k).all()) and k[0] > 0 and k[4] > 0


def locate_instances(
    masks: list[np.ndarray],
    depth: np.ndarray | None,
    k: np.ndarray | None,
    window: int = 5,
    valid_range: tuple[float, float] = DEPTH_RANGE_M,
) -> list[PointEstimate]:
    """One PointEstimate per mask: interior point, and its 3D position when depth and intrinsics are given
    and depth is valid there (within valid_range, metres). depth: uint16 mm / float m [H,W], same size as
    the masks."""
    use_depth = depth is not None and k is not None and has_intrinsics(k)
    points = []
    for mask in masks:
        u, v = interior_point(mask)
        z = depth_at(depth, u, v, window, mask, valid_range) if use_depth else None
        points.append(PointEstimate(u, v, None if z is None else backproject(u, v, z, k)))
    return points
