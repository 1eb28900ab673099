"""What a manipulation stack needs of each segmented instance, from registered depth: a robust centroid, an
oriented 3D box, the surface normal at the instance's interior point and its points for a cloud (numpy/OpenCV).

Conventions as pmp_ros.geometry: pixel (u, v) = (column, row); depth registered to the colour image, uint16
millimetres or float metres, NaN, inf and values outside Objects3DParams.depth_range (geometry.DEPTH_RANGE_M
by default; 0 among them) meaning no reading; 3D points in the camera's optical frame
(x right, y down, z forward), metres; K the 3x3 pinhole intrinsics.

Per mask (Objects3DParams holds the constants):
- core: the mask eroded by erosion_px (its edge pixels may carry the background's depth: the mixed or
  "flying" pixels of real sensors), or the whole mask when fewer than min_core_points valid pixels survive.
  Depth outliers: |z - median| > max(outlier_mads * 1.4826 * MAD, min_outlier_m), median and MAD (median
  absolute deviation; 1.4826 MAD estimates a Gaussian's sigma) taken over the core's depths.
- centroid: the mean of the core's inlier points, back-projected.
- box and cloud: every mask pixel whose depth passes the core's outlier test. Edge pixels are kept when
  their depth agrees with the core, so the box is not shrunk by the erosion; those carrying the background's
  depth fail the test.
- normal: a plane through the inlier points of a normal_window square around the pixel, robust to a crease
  in the window (_fit_window_normals).

Cost: each instance is cut to its mask's bounding box, so the cost follows the objects' sizes, not the
image's; the 3x3 eigen-decompositions and the normals' plane fits run batched over all instances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from pmp_ros.geometry import DEPTH_RANGE_M, MM_PER_M, has_intrinsics, interior_point

MAD_TO_SIGMA = 1.4826  # MAD of a Gaussian times this is its standard deviation
MIN_BOX_POINTS = 4  # a box needs points spanning three dimensions
MIN_PLANE_POINTS = 4  # a candidate plane needs more points than the 3 that define any plane
# The box's percentiles come from at most this many evenly spaced points of an instance: they only gate the
# bounds, which are actual points, and partitioning every point took most of the boxes' time.
BOX_GATE_SAMPLES = 256
DENSE_VOXEL_CELLS = 1 << 18  # voxel grids up to this many cells (or 4 per point) are counted densely, not sorted
Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class Objects3DParams:
    """erosion_px: pixels taken off the mask's edge for the core (3x3 erosions); min_core_points: fewer
    valid core pixels -> the whole mask is the core (small masks); outlier_mads, min_outlier_m: the depth
    outlier test (module docstring), the floor keeping quantised or noise-free depth (MAD 0) from rejecting
    the object's own points; box_percentiles, box_reach: the box bounds (OrientedBox); normal_window: side
    in pixels of the normal's window; min_normal_points: fewer inliers in it -> no normal (at least
    MIN_PLANE_POINTS count anyway); min_plane_tolerance_m: the normal's plane fit counts points this close
    to a candidate plane as on it at least (_fit_window_normals); depth_range: valid depth readings
    (metres, inclusive), others are no reading."""

    erosion_px: int = 1
    min_core_points: int = 10
    outlier_mads: float = 3.5
    min_outlier_m: float = 0.003
    box_percentiles: tuple[float, float] = (2.0, 98.0)
    box_reach: float = 0.25
    normal_window: int = 9
    min_normal_points: int = 6
    min_plane_tolerance_m: float = 0.001
    depth_range: tuple[float, float] = DEPTH_RANGE_M


DEFAULT_PARAMS = Objects3DParams()


@dataclass(frozen=True)
class OrientedBox:
    """A 3D box in the camera frame. center: metres; quaternion (x, y, z, w), w >= 0, of the rotation whose
    columns are the box axes in the camera frame: axis 0 the points' direction of largest spread, axis 2
    that of the smallest (on a flat face: its normal) pointing towards the camera, axis 0 with x >= 0 and
    axis 1 = axis 2 x axis 0 (right-handed), so an object keeps its axes from frame to frame; size: extents
    along axes 0, 1, 2, metres.

    Along each axis the bounds are the box_percentiles of the points, each then moved out to the farthest
    point within box_reach x the bounds' span of it: percentiles alone cut off the object's own extremes
    (a disc's 2-98 % range is about 11 % short of its diameter), while points far beyond them are outliers
    and stay out."""

    center: Vector3
    quaternion: tuple[float, float, float, float]
    size: Vector3

    def rotation(self) -> np.ndarray:
        """float64 [3,3], columns = the box axes in the camera frame."""
        return rotation_from_quaternion(self.quaternion)


@dataclass(frozen=True)
class ObjectPoints:
    """One instance's points for a cloud: xyz float32 [N,3] metres, rgb uint8 [N,3]; one point per occupied
    voxel (the mean of its points and colours) when downsampled."""

    instance_id: int
    xyz: np.ndarray
    rgb: np.ndarray


@dataclass(frozen=True)
class Object3D:
    """The 3D measurement of one instance mask.

    instance_id: as given (default: the mask's index + 1, as label images number instances).
    num_points: core inlier points behind the centroid (0 without valid depth in the mask).
    centroid: robust centroid, metres; None when num_points is 0.
    box: None with fewer than MIN_BOX_POINTS inlier points.
    normal_pixel: (u, v) where the normal was fitted (the given pixel or geometry.interior_point).
    normal: unit surface normal there, facing the camera; None with too few inliers in the window.
    points: the instance's inlier points (None unless a cloud was asked for).
    """

    instance_id: int
    num_points: int
    centroid: Vector3 | None
    box: OrientedBox | None
    normal_pixel: tuple[int, int]
    normal: Vector3 | None
    points: ObjectPoints | None


@dataclass(frozen=True)
class ObjectCloud:
    """Several instances' points as one cloud: xyz float32 [N,3], rgb uint8 [N,3], instance_id uint16 [N]
    (the instance each point belongs to)."""

    xyz: np.ndarray
    rgb: np.ndarray
    instance_id: np.ndarray


@dataclass
class _Inliers:
    """One instance's mask pixels that pass the depth test: rows, cols int [N] (image coordinates), depths
    float64 [N] metres; core bool [N] (which are core points; None: all are); the test's median and limit,
    metres."""

    rows: np.ndarray
    cols: np.ndarray
    depths: np.ndarray
    core: np.ndarray | None
    median: float
    limit: float


@dataclass
class _Batch:
    """The inliers of M instances concatenated, so that one numpy call serves them all: points float64 [3,N]
    (back-projected), rows, cols int [N], core bool [N]; instance m owns points starts[m] : starts[m] +
    counts[m] (every count >= 1)."""

    points: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    core: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, inliers: list[_Inliers], camera: np.ndarray) -> _Batch:
        counts = np.array([len(i.depths) for i in inliers])
        rows, cols = np.concatenate([i.rows for i in inliers]), np.concatenate([i.cols for i in inliers])
        depths = np.concatenate([i.depths for i in inliers])
        core = np.concatenate([np.ones(len(i.depths), bool) if i.core is None else i.core for i in inliers])
        fx, fy, cx, cy = camera[0, 0], camera[1, 1], camera[0, 2], camera[1, 2]
        points = np.stack([(cols - cx) * (depths / fx), (rows - cy) * (depths / fy), depths])
        return cls(points, rows, cols, core, np.cumsum(counts) - counts, counts)


def measure_objects(
    masks: Sequence[np.ndarray],
    depth: np.ndarray,
    k,
    *,
    instance_ids: Sequence[int] | None = None,
    boxes: Sequence[tuple[int, int, int, int]] | None = None,
    pixels: Sequence[tuple[int, int]] | None = None,
    cloud_rgb: np.ndarray | None = None,
    voxel_m: float = 0.0,
    params: Objects3DParams = DEFAULT_PARAMS,
) -> list[Object3D]:
    """One Object3D per mask.

    masks: bool [H,W] each, non-empty; depth: uint16 mm or float m [H,W], registered; k: 3x3 intrinsics
    (or CameraInfo.k's 9 values). boxes: each mask's pixel box (x0, y0, x1, y1) inclusive, as
    Instance.box (default: found from the mask, one pass over it). pixels: (u, v) per mask for the normal
    (default: geometry.interior_point, which the node already has from locate_instances). cloud_rgb: uint8
    [H,W,3] colour image: also return each instance's points coloured from it, voxel-downsampled with
    cells of voxel_m metres (0 keeps every point). Without usable intrinsics (geometry.has_intrinsics) no
    result has 3D values.
    """
    camera = np.asarray(k, dtype=np.float64).reshape(3, 3) if has_intrinsics(k) else None
    ids = list(instance_ids) if instance_ids is not None else list(range(1, len(masks) + 1))
    normal_pixels, inliers = [], []
    for index, mask in enumerate(masks):
        box = boxes[index] if boxes is not None else mask_box(mask)
        pixel = pixels[index] if pixels is not None else _interior_point_in(mask, box)
        normal_pixels.append(pixel)
        inliers.append(_select_inliers(mask, depth, box, params) if camera is not None else None)

    measured = [index for index, found in enumerate(inliers) if found is not None]
    fitted = {}
    if measured:
        batch = _Batch.of([inliers[i] for i in measured], camera)
        normals = _fit_window_normals(
            [masks[i] for i in measured],
            depth,
            np.array([normal_pixels[i] for i in measured]),
            np.array([(inliers[i].median, inliers[i].limit) for i in measured]),
            camera,
            params,
        )
        clouds = _clouds(batch, cloud_rgb, voxel_m) if cloud_rgb is not None else [None] * len(measured)
        fitted = dict(zip(measured, zip(*_centroids(batch), _fit_boxes(batch, params), normals, clouds)))
    objects = []
    for index, instance_id in enumerate(ids):
        if index not in fitted:
            cloud = None if cloud_rgb is None else _no_points(instance_id)
            objects.append(Object3D(instance_id, 0, None, None, normal_pixels[index], None, cloud))
            continue
        centroid, num_points, box, normal, cloud = fitted[index]
        points = None if cloud is None else ObjectPoints(instance_id, *cloud)
        objects.append(Object3D(instance_id, num_points, centroid, box, normal_pixels[index], normal, points))
    return objects


def object_centroids(
    masks: Sequence[np.ndarray],
    depth: np.ndarray,
    k,
    *,
    boxes: Sequence[tuple[int, int, int, int]] | None = None,
    params: Objects3DParams = DEFAULT_PARAMS,
) -> list[Vector3 | None]:
    """measure_objects' centroid of each mask (same arguments), None where it has none: the same inliers
    and mean without the box, normal and interior point, for a caller that needs only positions (the
    node's tracker, for every instance of a frame)."""
    if not has_intrinsics(k):
        return [None] * len(masks)
    camera = np.asarray(k, dtype=np.float64).reshape(3, 3)
    inliers = [
        _select_inliers(mask, depth, boxes[index] if boxes is not None else mask_box(mask), params)
        for index, mask in enumerate(masks)
    ]
    measured = [index for index, found in enumerate(inliers) if found is not None]
    centroids: list[Vector3 | None] = [None] * len(masks)
    if measured:
        for index, centroid in zip(measured, _centroids(_Batch.of([inliers[i] for i in measured], camera))[0]):
            centroids[index] = centroid
    return centroids


def stack_points(objects: Sequence[Object3D]) -> ObjectCloud:
    """The points of the objects that have them, as one cloud (in the objects' order)."""
    parts = [o.points for o in objects if o.points is not None]
    if not parts:
        return ObjectCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.uint16))
    return ObjectCloud(
        np.concatenate([p.xyz for p in parts]),
        np.concatenate([p.rgb for p in parts]),
        np.concatenate([np.full(len(p.xyz), p.instance_id, np.uint16) for p in parts]),
    )


def voxel_downsample(xyz: np.ndarray, rgb: np.ndarray, voxel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(xyz float32 [M,3], rgb uint8 [M,3]): the mean point and mean colour of the points in each occupied
    cell of a voxel_m grid (cells floor(xyz / voxel_m)), cells in lexicographic (x, y, z) order.
    xyz float [N,3], rgb uint8 [N,3]; voxel_m <= 0 returns them unchanged."""
    if voxel_m <= 0 or len(xyz) == 0:
        return xyz.astype(np.float32, copy=False), rgb.astype(np.uint8, copy=False)
    means, colours, _ = _voxel_means(np.asarray(xyz, np.float64).T, rgb, np.array([0]), np.array([len(xyz)]), voxel_m)
    return means, colours


def quaternion_from_rotation(rotation) -> tuple[float, float, float, float]:
    """(x, y, z, w), w >= 0, of a proper rotation matrix [3,3] (Shepperd's method: the largest of the four
    candidates under the square root keeps it accurate near 180 degrees)."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = np.asarray(rotation, dtype=np.float64).tolist()
    trace = r00 + r11 + r22
    if trace > max(r00, r11, r22):
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [(r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s, s / 4]
    elif r00 >= r11 and r00 >= r22:
        s = 2.0 * math.sqrt(1.0 + r00 - r11 - r22)
        q = [s / 4, (r01 + r10) / s, (r02 + r20) / s, (r21 - r12) / s]
    elif r11 >= r22:
        s = 2.0 * math.sqrt(1.0 + r11 - r00 - r22)
        q = [(r01 + r10) / s, s / 4, (r12 + r21) / s, (r02 - r20) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + r22 - r00 - r11)
        q = [(r02 + r20) / s, (r12 + r21) / s, s / 4, (r10 - r01) / s]
    norm = math.sqrt(sum(c * c for c in q)) * (1.0 if q[3] >= 0 else -1.0)
    return q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm


def rotation_from_quaternion(quaternion) -> np.ndarray:
    """float64 [3,3] rotation of a unit quaternion (x, y, z, w)."""
    x, y, z, w = quaternion
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive pixel box of a mask's pixels (cv2.boundingRect: one fast pass)."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return x, y, x + w - 1, y + h - 1


@cache
def _window_layout(window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(du, dv int [n], candidates bool [5,n]) of a square window of n = window^2 pixels (row-major): the
    pixels' offsets from the centre, and the pixels each candidate plane of _fit_window_normals is fitted
    to: the four quadrants (each with the centre row and column), then the whole window."""
    offsets = np.arange(window) - window // 2
    dv, du = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    quadrants = [(du <= 0) & (dv <= 0), (du >= 0) & (dv <= 0), (du <= 0) & (dv >= 0), (du >= 0) & (dv >= 0)]
    layout = du, dv, np.stack([*quadrants, np.ones(du.shape, bool)])
    for array in layout:
        array.setflags(write=False)  # shared by every call
    return layout


def _interior_point_in(mask: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int]:
    """geometry.interior_point of the mask, computed on its box."""
    u, v = interior_point(mask[box[1] : box[3] + 1, box[0] : box[2] + 1])
    return u + box[0], v + box[1]


def _depth_metres(raw: np.ndarray, depth_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(float64 metres, bool valid) of depth values, valid as geometry.depth_in_metres: uint16 is millimetres,
    float is metres, valid within depth_range (metres; NaN and inf never). A few numpy calls: that
    function's NaN marking costs more than the rest of a small instance's measurement."""
    near, far = depth_range
    if raw.dtype.kind == "u":
        # The range in whole millimetres, compared on the integers (rounded inwards).
        return raw * (1.0 / MM_PER_M), (raw >= math.ceil(near * MM_PER_M)) & (raw <= math.floor(far * MM_PER_M))
    if raw.dtype.kind != "f":
        raise ValueError(f"depth must be uint16 (mm) or float (m), got {raw.dtype}")
    metres = raw.astype(np.float64)
    with np.errstate(invalid="ignore"):  # NaN compares False: invalid
        return metres, (metres >= near) & (metres <= far)


def _select_inliers(
    mask: np.ndarray, depth: np.ndarray, box: tuple[int, int, int, int], params: Objects3DParams
) -> _Inliers | None:
    """The mask's pixels that pass the depth test of its core (module docstring); None without any valid
    depth in the mask. Works on the box (padded so the erosion sees the background around the mask)."""
    height, width = mask.shape
    pad = params.erosion_px
    x0, y0 = max(box[0] - pad, 0), max(box[1] - pad, 0)
    x1, y1 = min(box[2] + pad + 1, width), min(box[3] + pad + 1, height)
    crop = mask[y0:y1, x0:x1]
    z, readings = _depth_metres(depth[y0:y1, x0:x1], params.depth_range)
    rows, cols = np.nonzero(crop & readings)  # pixel lists from here on: the mask holds fewer than its box
    if rows.size == 0:
        return None
    depths = z[rows, cols]
    core = None
    if params.erosion_px > 0:
        core = cv2.erode(crop.view(np.uint8), None, iterations=params.erosion_px)[rows, cols].view(bool)
        if np.count_nonzero(core) < params.min_core_points:
            core = None
    core_depths = depths if core is None else depths[core]
    middle = core_depths.size // 2
    median = float(np.partition(core_depths, middle)[middle])
    mad = float(np.partition(np.abs(core_depths - median), middle)[middle])
    limit = max(params.outlier_mads * MAD_TO_SIGMA * mad, params.min_outlier_m)
    keep = np.abs(depths - median) <= limit
    # At least half the core passes (the limit is at least one MAD), so the centroid always has points.
    if not keep.all():
        rows, cols, depths = rows[keep], cols[keep], depths[keep]
        core = None if core is None else core[keep]
    return _Inliers(rows + y0, cols + x0, depths, core, median, limit)


def _centroids(batch: _Batch) -> tuple[list[Vector3], list[int]]:
    """(centroid, number of core points) per instance: the mean of its core inlier points."""
    core = batch.core.astype(np.float64)
    sums = np.add.reduceat(batch.points * core, batch.starts, axis=1)  # [3,M]
    counts = np.add.reduceat(core, batch.starts)
    return [_vector(c) for c in (sums / counts).T], [int(n) for n in counts]


def _fit_boxes(batch: _Batch, params: Objects3DParams) -> list[OrientedBox | None]:
    """OrientedBox per instance (its docstring), None with fewer than MIN_BOX_POINTS points. Everything runs
    on the whole batch but the percentiles, which need each instance's points."""
    starts, counts = batch.starts, batch.counts
    means = (np.add.reduceat(batch.points, starts, axis=1) / counts).T  # [M,3]
    offsets = batch.points - np.repeat(means.T, counts, axis=1)  # [3,N]
    scatter = np.add.reduceat(offsets[:, None, :] * offsets[None, :, :], starts, axis=2)  # [3,3,M]
    _, vectors = np.linalg.eigh(scatter.transpose(2, 0, 1))
    spread_axis, thin_axis = vectors[:, :, 2], vectors[:, :, 0]  # eigenvalues ascend: most and least spread
    thin_axis = np.where((np.einsum("mi,mi->m", thin_axis, means) > 0)[:, None], -thin_axis, thin_axis)
    spread_axis = np.where(spread_axis[:, :1] < 0, -spread_axis, spread_axis)
    axes = np.stack([spread_axis, np.cross(thin_axis, spread_axis), thin_axis], 2)  # [M,3,3], columns

    along = np.empty_like(offsets)  # the points' coordinates along their instance's axes
    low, high = np.empty((3, len(counts))), np.empty((3, len(counts)))
    low_q, high_q = params.box_percentiles
    for m, (start, n) in enumerate(zip(starts.tolist(), counts.tolist())):
        np.matmul(axes[m].T, offsets[:, start : start + n], out=along[:, start : start + n])
        gate_sample = along[:, start : start + n : max(n // BOX_GATE_SAMPLES, 1)]
        last = gate_sample.shape[1] - 1
        low_k, high_k = round(low_q / 100 * last), round(high_q / 100 * last)
        ranked = np.partition(gate_sample, (low_k, high_k), axis=1)
        low[:, m], high[:, m] = ranked[:, low_k], ranked[:, high_k]
    margin = params.box_reach * (high - low)
    low_gate, high_gate = np.repeat(low - margin, counts, axis=1), np.repeat(high + margin, counts, axis=1)
    low = np.minimum.reduceat(np.where(along >= low_gate, along, np.inf), starts, axis=1).T
    high = np.maximum.reduceat(np.where(along <= high_gate, along, -np.inf), starts, axis=1).T
    centers = means + np.einsum("mij,mj->mi", axes, (low + high) / 2)
    return [
        OrientedBox(_vector(center), quaternion_from_rotation(rotation), _vector(size)) if n >= MIN_BOX_POINTS else None
        for center, rotation, size, n in zip(centers, axes, high - low, counts)
    ]


def _fit_window_normals(
    masks: list[np.ndarray],
    depth: np.ndarray,
    pixels: np.ndarray,
    depth_tests: np.ndarray,
    camera: np.ndarray,
    params: Objects3DParams,
) -> list[Vector3 | None]:
    """Surface normal of the face that most of each window's inlier points lie on, facing the camera; None
    with fewer than params.min_normal_points inliers in the window. pixels int [M,2] (u, v): the windows'
    centres; depth_tests float [M,2]: each instance's (median, limit) depth test.

    A window at a crease (a top face meeting a side face) holds two planes, and one least-squares fit
    through both tilts between them. Candidate planes are fitted to each quadrant of the window (those on
    one side of a crease through the centre hold one face only) and to the whole window; the candidate with
    the most window points within a tolerance wins and is refitted to those points. The tolerance is 3 x
    the smallest candidate RMS residual (the sensor noise, as seen on the flattest quadrant), at least
    params.min_plane_tolerance_m. All instances at once: [M instances, 5 candidates, n = w*w pixels].
    """
    height, width = depth.shape
    du, dv, candidates = _window_layout(params.normal_window)
    u, v = pixels[:, :1] + du, pixels[:, 1:] + dv  # [M,n]
    in_image = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v = np.clip(u, 0, width - 1), np.clip(v, 0, height - 1)
    z, readings = _depth_metres(depth[v, u], params.depth_range)
    on_mask = np.stack([mask[rows, cols] for mask, rows, cols in zip(masks, v, u)])
    median, limit = depth_tests[:, :1], depth_tests[:, 1:]
    present = in_image & on_mask & readings & (np.abs(z - median) <= limit)
    counts = present.sum(1)
    enough = counts >= max(params.min_normal_points, MIN_PLANE_POINTS)
    z = np.where(present, z, median)  # absent pixels get no weight, but must be finite (NaN x 0 is NaN)
    fx, fy, cx, cy = camera[0, 0], camera[1, 1], camera[0, 2], camera[1, 2]
    # Centred on the window's centre pixel at the median depth: keeps the second moments well conditioned.
    origin = np.concatenate([(pixels[:, :1] - cx) / fx * median, (pixels[:, 1:] - cy) / fy * median, median], 1)
    points = np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], -1) - origin[:, None]  # [M,n,3]

    members = present[:, None, :] & candidates  # [M,5,n]
    moments = _plane_moments(points)
    normals, means, residual_rms = _weighted_planes(moments, members)
    usable = members.sum(-1) >= MIN_PLANE_POINTS
    noise = np.where(usable, residual_rms, np.inf).min(1)
    tolerance = np.maximum(3.0 * noise, params.min_plane_tolerance_m)
    distance = np.abs(normals @ points.swapaxes(1, 2) - np.einsum("mci,mci->mc", means, normals)[..., None])
    within = (distance <= tolerance[:, None, None]) & present[:, None, :]
    score = np.where(usable, within.sum(-1), -1)
    chosen = within[np.arange(len(masks)), score.argmax(1)]  # [M,n]
    final, final_means, _ = _weighted_planes(moments, chosen[:, None, :])
    final, final_means = final[:, 0], final_means[:, 0] + origin
    facing = np.where(np.einsum("mi,mi->m", final, final_means) > 0, -1.0, 1.0)[:, None] * final
    return [_vector(n) if ok else None for n, ok in zip(facing, enough)]


def _plane_moments(points: np.ndarray) -> np.ndarray:
    """float64 [M,n,12]: each point (3) and its outer product (9), the terms of any subset's mean and
    second moments (_weighted_planes)."""
    outer = points[..., [0, 0, 0, 1, 1, 1, 2, 2, 2]] * points[..., [0, 1, 2, 0, 1, 2, 0, 1, 2]]
    return np.concatenate([points, outer], -1)


def _weighted_planes(moments: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares planes through subsets of each instance's window points. moments [M,n,12]
    (_plane_moments); members bool [M,C,n]. Returns (unit normals [M,C,3], means [M,C,3], RMS distance of
    the members to the plane [M,C]); a subset with fewer than 3 points gives an arbitrary plane."""
    weights = members.astype(np.float64)
    counts = np.maximum(weights.sum(-1), 1.0)[..., None]  # [M,C,1]
    averages = weights @ moments / counts  # every subset of every instance in one batched matmul
    means, second = averages[..., :3], averages[..., 3:].reshape(*members.shape[:2], 3, 3)
    values, vectors = np.linalg.eigh(second - means[..., :, None] * means[..., None, :])
    return vectors[..., 0], means, np.sqrt(np.maximum(values[..., 0], 0.0))


def _clouds(batch: _Batch, rgb: np.ndarray, voxel_m: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(xyz float32 [N,3], rgb uint8 [N,3]) per instance, voxel-downsampled when voxel_m > 0."""
    colours = rgb[batch.rows, batch.cols]
    if voxel_m <= 0:
        xyz, ends = batch.points.T.astype(np.float32), np.append(batch.starts, len(colours))
    else:
        xyz, colours, ends = _voxel_means(batch.points, colours, batch.starts, batch.counts, voxel_m)
    return [(xyz[start:end], colours[start:end]) for start, end in zip(ends[:-1].tolist(), ends[1:].tolist())]


def _voxel_means(
    points: np.ndarray, colours: np.ndarray, starts: np.ndarray, counts: np.ndarray, voxel_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """voxel_downsample of M groups of points at once, never merging two groups' points: points float64
    [3,N], colours uint8 [N,3]; group m is points[:, starts[m] : starts[m] + counts[m]] (counts >= 1).
    Returns (xyz float32 [K,3], rgb uint8 [K,3], ends int [M+1]: group m's voxels are ends[m] : ends[m+1]).

    Each group's cells are numbered within its own bounding grid, the grids one after another, so a cell
    number is unique over all groups and sorts by group, then by (x, y, z)."""
    cells = np.floor(points / voxel_m).astype(np.int64)
    cells -= np.repeat(np.minimum.reduceat(cells, starts, axis=1), counts, axis=1)
    extent = np.maximum.reduceat(cells, starts, axis=1) + 1  # [3,M]
    grid_sizes = extent.prod(0)
    grid_ends = np.cumsum(grid_sizes)
    keys = np.repeat(grid_ends - grid_sizes, counts) + (
        cells[0] * np.repeat(extent[1] * extent[2], counts) + cells[1] * np.repeat(extent[2], counts) + cells[2]
    )
    total_cells = int(grid_ends[-1])
    if total_cells <= max(DENSE_VOXEL_CELLS, 4 * keys.size):
        # Counting over the dense grids needs no sort; the grids of objects at cloud voxel sizes are small.
        per_cell = np.bincount(keys, minlength=total_cells)
        occupied_before = np.cumsum(per_cell > 0)  # occupied cells up to and including each cell
        inverse = occupied_before[keys] - 1
        voxel_counts = per_cell[per_cell > 0]
        ends = np.concatenate([[0], occupied_before[grid_ends - 1]])
    else:
        occupied, inverse, voxel_counts = np.unique(keys, return_inverse=True, return_counts=True)
        ends = np.searchsorted(occupied, np.concatenate([[0], grid_ends]))
    columns = [*points, *np.asarray(colours, np.float64).T]
    sums = np.stack([np.bincount(inverse, weights=c, minlength=len(voxel_counts)) for c in columns], 1)
    means = sums / voxel_counts[:, None]
    return means[:, :3].astype(np.float32), np.rint(means[:, 3:]).astype(np.uint8), ends


def _no_points(instance_id: int) -> ObjectPoints:
    return ObjectPoints(instance_id, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))


def _vector(values: np.ndarray) -> Vector3:
    """A float64 [3] array as a tuple of Python floats (frozen results, plain numbers for messages)."""
    x, y, z = values.tolist()
    return x, y, z
