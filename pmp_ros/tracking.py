"""Multi-object tracking of segmented instances: stable ids and smoothed scores from frame to frame.

`Tracker.update` takes one frame's instances (anything with label, score and a bool [H,W] mask, as
model/inference.Instance), optionally an appearance embedding per instance (float [D], e.g.
Instance.embedding, the CLIP embedding of its proposal) and a 3D centroid per instance (float [3], metres,
camera optical frame, e.g. objects3d.Object3D.centroid), and assigns them to the live tracks with
scipy.optimize.linear_sum_assignment on a cost in [0, 1] per (track, instance) pair:

    cost = (w_iou c_iou + w_app c_app + w_dist c_dist) / (sum of the weights of the terms present)
           + label_change_cost if the labels differ

- c_iou = 1 - IoU(instance mask, track's predicted mask): its last mask moved by the camera's image shifts
  since it was seen (camera_shift, when the caller gives it) and by its own pixel velocity;
- c_app = min((1 - cos) / appearance_scale, 1) between the instance's embedding and the track's (an EMA of
  its instances' embeddings), present when both exist;
- c_dist = min(|x - x_pred| / distance_scale_m, 1) to the track's predicted centroid (constant velocity),
  present when both exist.
A pair costing more than max_cost is never assigned.

Lifecycle (TrackerParams): an unassigned instance scoring >= new_track_score starts a tentative track; it
is confirmed once it has min_hits hits, and a tentative track that misses a frame is deleted; the tracks born
in the first frame after the tracker starts or an instruction changes (`retain_labels`) are confirmed at
once (there is no earlier frame to weigh them against, and holding them back would answer a new instruction
a frame late). A confirmed track survives up to max_misses consecutive missed frames. Ids are 1, 2, ... in
order of birth, never reused. The track's score is an EMA over the frames it is detected in (weight
score_weight on the frame's score); a missed frame multiplies it by miss_decay. A track is published while
it is confirmed and its smoothed score >= publish_score, so a score that dips below the threshold for a
frame, or a frame where the object is not found, does not make it disappear.

A missed frame of a confirmed track (the model did not find the object) is published in one of two ways:
- with the frame's image (update's `image`) and image_check_tolerance > 0, the image is checked: the track's
  template (colours of up to TEMPLATE_SAMPLES pixels under its last detected mask, in the frame it was
  detected in) is compared with the image
  at the predicted place and at shifts up to image_search x the image width around it; where the best
  match differs by at most image_check_tolerance grey levels on average, the object is still there and the
  track is published with its mask moved to that match (and its position corrected to it); otherwise it is
  occluded or gone and is not published this frame (it stays alive until max_misses);
- otherwise, for its first publish_misses consecutive missed frames, with its predicted mask (a prediction
  drifts from the object: published too long it is a false positive).
Either way a mask that has left the image is not published. `retain_labels` keeps only the tracks of the
labels a new instruction still names.

Pure numpy + scipy: no ROS, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

# The least instance score the tracker is meant to be given (the Predictor's score threshold for it):
# weak instances continue tracks, only new_track_score starts one, only publish_score is published.
# TrackerParams were chosen with it (python -m pmp_ros.eval.tracking); the node uses it too.
DETECTION_FLOOR = 0.05
# A track's template (the image under its last mask, for checking the image where it was missed) keeps at
# most this many pixels: the check costs the same at any resolution.
TEMPLATE_SAMPLES = 400


class Detection(Protocol):
    """What the tracker needs of an instance (model/inference.Instance has it). mask: bool [H,W]."""

    label: str
    score: float
    mask: np.ndarray


@dataclass(frozen=True)
class TrackerParams:
    """Association: iou_weight, appearance_weight, distance_weight weigh the cost terms (module docstring);
    appearance_scale: cosine distance at which the appearance term is 1; distance_scale_m: 3D distance
    (m) at which the distance term is 1; label_change_cost: added when the labels differ; max_cost: pairs
    above it are not assigned.
    Lifecycle: new_track_score: the least score of an instance that starts a track (weaker ones only
    continue tracks); min_hits: hits that confirm a track; max_misses: consecutive missed frames a
    confirmed track survives; publish_misses: consecutive missed frames a confirmed track is published
    with its predicted mask when the image is not checked (0: only frames it is detected in).
    Image check of missed tracks (module docstring): image_check_tolerance: the largest mean absolute colour
    difference (grey levels, 0-255) at which the image still shows the object (0: no check); image_search:
    the search radius around the predicted place, as a fraction of the image width.
    Smoothing: score_weight: EMA weight of the frame's score (1 = none); miss_decay: factor on the smoothed
    score per missed frame (1 = held, 1 - score_weight = a miss counts as score 0); publish_score: the
    least smoothed score of a published track; motion_weight, appearance_update: EMA weights of the newest
    velocity and embedding.
    Defaults: new_track_score, min_hits, max_misses, publish_misses, miss_decay, max_cost and
    image_check_tolerance were chosen on 60 validation sequences by python -m pmp_ros.eval.tracking (its GRID
    and rule) for the shipped model (docs/results.md "Tracking",
    docs/results/tracking_q32_2026-12-07.json); score_weight, distance_weight, motion_weight and
    image_search before it, one at a time on the same validation records (docs/results.md);
    appearance_scale and distance_scale_m from the same-object vs other-object spread of cosines and 3D steps
    on validation sequences; publish_score is the shipped model's score threshold; the rest are not tuned."""

    iou_weight: float = 1.0
    appearance_weight: float = 1.0
    distance_weight: float = 0.0
    appearance_scale: float = 0.3
    distance_scale_m: float = 0.1
    label_change_cost: float = 0.3
    max_cost: float = 0.9
    new_track_score: float = 0.3
    min_hits: int = 1
    max_misses: int = 20
    publish_misses: int = 1
    image_check_tolerance: float = 20.0
    image_search: float = 0.0125
    score_weight: float = 0.3
    miss_decay: float = 0.8
    publish_score: float = 0.2
    motion_weight: float = 0.0
    appearance_update: float = 0.3


@dataclass(frozen=True)
class TrackedInstance:
    """A published track in one frame.

    track_id: stable over frames; label: its last instance's label; score: smoothed; detection: index of
    the instance assigned to it this frame (into update's instances), None when it missed this frame;
    mask: bool [H,W], the instance's mask, or the predicted one when missed; hits: instances assigned so
    far; misses: consecutive missed frames (0 when detected)."""

    track_id: int
    label: str
    score: float
    detection: int | None
    mask: np.ndarray
    hits: int
    misses: int


@dataclass(frozen=True)
class TrackingResult:
    """tracks: the published tracks, highest smoothed score first; track_ids: per instance given to update,
    the id of the published track it was assigned to, or None (unassigned, tentative or below
    publish_score)."""

    tracks: tuple[TrackedInstance, ...]
    track_ids: tuple[int | None, ...]


class _Motion:
    """A position with a constant-velocity model: velocity = EMA of the displacement per frame."""

    def __init__(self, position: np.ndarray):
        self.position = position
        self.velocity = np.zeros_like(position)

    def predict(self, frames_ahead: int) -> np.ndarray:
        return self.position + frames_ahead * self.velocity

    def observe(self, position: np.ndarray, frames_elapsed: int, weight: float) -> None:
        step = (position - self.position) / frames_elapsed
        self.velocity = (1.0 - weight) * self.velocity + weight * step
        self.position = position


@dataclass
class _Track:
    id: int
    label: str
    score: float
    mask: np.ndarray  # last detected mask, bool [H,W]
    mask_centre: np.ndarray  # (x, y) centroid of `mask` in the frame it was detected in
    pixel: _Motion  # mask centroid (x, y) in the current frame's pixels; velocity: the object's own
    embedding: np.ndarray | None  # unit [D]
    centroid: _Motion | None  # metres [3]
    seen_in: np.ndarray | None = None  # the frame `mask` was detected in, kept for the image check (uint8 [H,W,3])
    hits: int = 1
    misses: int = 0
    born_confirmed: bool = False  # born in the first frame after a start or an instruction change
    checked_mask: np.ndarray | None = None  # this missed frame's predicted mask, as the image check placed it

    def confirmed(self, min_hits: int) -> bool:
        return self.born_confirmed or self.hits >= min_hits

    def predicted_offset(self, frames_ahead: int) -> tuple[int, int]:
        """(dx, dy) whole pixels from the last mask to where it is predicted frames_ahead frames after it was
        seen."""
        dx, dy = np.rint(self.pixel.predict(frames_ahead) - self.mask_centre).astype(int)
        return int(dx), int(dy)

    def predicted_mask(self, frames_ahead: int) -> np.ndarray:
        """The last mask moved to the centroid predicted frames_ahead frames after it was seen."""
        return _shifted(self.mask, *self.predicted_offset(frames_ahead))


@dataclass(frozen=True)
class _Template:
    """Colour samples of a detected mask: pixel rows ys and columns xs int [N] (at most TEMPLATE_SAMPLES, evenly
    spread over the mask) and their colours int16 [N,3]."""

    ys: np.ndarray
    xs: np.ndarray
    colours: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray, mask: np.ndarray) -> _Template | None:
        ys, xs = np.nonzero(mask)
        if not len(ys):
            return None
        step = math.ceil(len(ys) / TEMPLATE_SAMPLES)
        ys, xs = ys[::step], xs[::step]
        return cls(ys, xs, image[ys, xs].astype(np.int16))

    def best_match(self, image: np.ndarray, dx: int, dy: int, radius: int) -> tuple[float, int, int]:
        """(difference, sx, sy): the samples moved by (dx + sx, dy + sy) for shifts |sx|, |sy| <= radius,
        compared with `image` (uint8 [H,W,3]); difference: the mean absolute colour difference per channel
        (grey levels) of the samples inside the image at the best shift, inf where fewer than half of them
        are inside. Searched coarse to fine: a grid of at most 9 x 9 shifts, then every shift around its best."""
        step = max(1, math.ceil(radius / 4))
        coarse = np.arange(-(radius // step), radius // step + 1) * step
        best = self._best_of(image, dx, dy, coarse, coarse)
        if step > 1:
            fine = np.arange(-(step - 1), step)
            best = min(best, self._best_of(image, dx, dy, best[1] + fine, best[2] + fine))
        return best

    def _best_of(
        self, image: np.ndarray, dx: int, dy: int, x_shifts: np.ndarray, y_shifts: np.ndarray
    ) -> tuple[float, int, int]:
        """best_match over the shifts x_shifts x y_shifts (int [n] each)."""
        sy, sx = (grid.reshape(-1, 1) for grid in np.meshgrid(y_shifts, x_shifts, indexing="ij"))
        rows, cols = self.ys[None] + dy + sy, self.xs[None] + dx + sx  # [S,N]
        height, width = image.shape[:2]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        colours = image[rows.clip(0, height - 1), cols.clip(0, width - 1)].astype(np.int16)  # [S,N,3]
        difference = np.abs(colours - self.colours[None]).mean(axis=2)
        counted = inside.sum(axis=1)
        mean = np.where(inside, difference, 0.0).sum(axis=1) / np.maximum(counted, 1)
        mean[counted < 0.5 * len(self.ys)] = np.inf
        best = int(np.argmin(mean))
        return float(mean[best]), int(sx[best, 0]), int(sy[best, 0])


class Tracker:
    """Tracks of one camera's instances (module docstring). Not thread-safe: one update at a time."""

    def __init__(self, params: TrackerParams | None = None, first_id: int = 1):
        self.params = params or TrackerParams()
        self._tracks: list[_Track] = []
        self._next_id = first_id  # another tracker's next_id: its ids are not given again
        self._first_frame = True  # until the first update after the start or retain_labels

    @property
    def next_id(self) -> int:
        """The id the next new track gets."""
        return self._next_id

    @property
    def num_tracks(self) -> int:
        """Live tracks, tentative and missed ones included."""
        return len(self._tracks)

    @property
    def live_track_ids(self) -> frozenset[int]:
        """The ids of the live tracks, tentative, missed and unpublished ones included."""
        return frozenset(track.id for track in self._tracks)

    def update(
        self,
        instances: Sequence[Detection],
        embeddings: Sequence[np.ndarray | None] | None = None,
        centroids: Sequence[Sequence[float] | None] | None = None,
        camera_shift: tuple[float, float] | None = None,
        image: np.ndarray | None = None,
    ) -> TrackingResult:
        """Advance by one frame. instances: this frame's (masks bool [H,W], one size for a tracker);
        embeddings: float [D] or None per instance; centroids: (x, y, z) metres or None per instance;
        camera_shift: (dx, dy) pixels, how far the scene moved in the image since the previous frame because
        the camera moved (e.g. cv2.phaseCorrelate of the two frames in grey), or None (no compensation:
        the tracks' velocities then include the camera's motion)."""
        if camera_shift is not None:
            for track in self._tracks:
                track.pixel.position = track.pixel.position + np.asarray(camera_shift, np.float64)
        embeddings = _unit_vectors(embeddings, len(instances))
        points = [None if c is None else np.asarray(c, np.float64) for c in (centroids or [None] * len(instances))]
        if len(points) != len(instances):
            raise ValueError(f"{len(points)} centroids for {len(instances)} instances")
        detections = self._associate(instances, embeddings, points)  # track id -> instance index
        params, survivors = self.params, []
        check = image is not None and params.image_check_tolerance > 0
        for track in self._tracks:
            index = detections.get(track.id)
            if index is not None:
                self._observe(track, instances[index], embeddings[index], points[index], image if check else None)
                survivors.append(track)
                continue
            track.score *= params.miss_decay
            if track.confirmed(params.min_hits) and track.misses < params.max_misses:
                track.misses += 1
                track.checked_mask = self._check(track, image) if check else None
                survivors.append(track)
        taken = set(detections.values())
        for index, instance in enumerate(instances):
            if index not in taken and instance.score >= params.new_track_score:
                track = self._new_track(instance, embeddings[index], points[index], image if check else None)
                track.born_confirmed = self._first_frame
                detections[track.id] = index
                survivors.append(track)
        self._tracks = survivors
        self._first_frame = False
        return self._result(detections, len(instances))

    def retain_labels(self, labels: Collection[str]) -> None:
        """Keep only the tracks whose label is in labels (a new instruction: the tracks of the classes it
        still names keep their ids; the others end). The next frame's new tracks are confirmed at once."""
        self._tracks = [track for track in self._tracks if track.label in labels]
        self._first_frame = True

    # --- association -----------------------------------------------------------------------------------

    def _associate(
        self,
        instances: Sequence[Detection],
        embeddings: list[np.ndarray | None],
        points: list[np.ndarray | None],
    ) -> dict[int, int]:
        """Track id -> instance index of the minimum-cost assignment, pairs above max_cost left out."""
        if not self._tracks or not instances:
            return {}
        cost = self._costs(instances, embeddings, points)
        rows, cols = linear_sum_assignment(cost)
        return {self._tracks[r].id: int(c) for r, c in zip(rows, cols) if cost[r, c] <= self.params.max_cost}

    def _costs(
        self,
        instances: Sequence[Detection],
        embeddings: list[np.ndarray | None],
        points: list[np.ndarray | None],
    ) -> np.ndarray:
        """float [T,N] association costs (module docstring)."""
        p = self.params
        predicted_masks = np.stack([t.predicted_mask(t.misses + 1) for t in self._tracks])
        iou = mask_iou(predicted_masks, np.stack([i.mask for i in instances]))
        total = p.iou_weight * (1.0 - iou)
        weights = np.full(iou.shape, p.iou_weight)
        for row, track in enumerate(self._tracks):
            predicted = None if track.centroid is None else track.centroid.predict(track.misses + 1)
            for col, (embedding, point) in enumerate(zip(embeddings, points)):
                if track.embedding is not None and embedding is not None:
                    distance = 1.0 - float(track.embedding @ embedding)
                    total[row, col] += p.appearance_weight * min(distance / p.appearance_scale, 1.0)
                    weights[row, col] += p.appearance_weight
                if predicted is not None and point is not None:
                    distance = float(np.linalg.norm(point - predicted))
                    total[row, col] += p.distance_weight * min(distance / p.distance_scale_m, 1.0)
                    weights[row, col] += p.distance_weight
        cost = total / np.maximum(weights, 1e-12)
        labels = np.array([t.label for t in self._tracks], dtype=object)[:, None]
        return cost + p.label_change_cost * (labels != np.array([i.label for i in instances], dtype=object)[None])

    # --- track state -----------------------------------------------------------------------------------

    def _check(self, track: _Track, image: np.ndarray) -> np.ndarray | None:
        """A missed track's mask where the image still shows it: its template (taken here, on a miss only, not
        for every detection) searched near the predicted place; None when the best match differs by more than
        image_check_tolerance (occluded, gone, or no frame kept). A match moves the track's position there."""
        template = None if track.seen_in is None else _Template.of(track.seen_in, track.mask)
        if template is None:
            return None
        dx, dy = track.predicted_offset(track.misses)
        radius = round(self.params.image_search * image.shape[1])
        difference, sx, sy = template.best_match(image, dx, dy, radius)
        if difference > self.params.image_check_tolerance:
            return None
        track.pixel.position = track.pixel.position + np.array([sx, sy], np.float64)
        return _shifted(track.mask, dx + sx, dy + sy)

    def _new_track(
        self,
        instance: Detection,
        embedding: np.ndarray | None,
        point: np.ndarray | None,
        image: np.ndarray | None = None,
    ) -> _Track:
        track = _Track(
            id=self._next_id,
            label=instance.label,
            score=float(instance.score),
            mask=instance.mask,
            mask_centre=_mask_centre(instance.mask),
            pixel=_Motion(_mask_centre(instance.mask)),
            embedding=embedding,
            centroid=None if point is None else _Motion(point),
            seen_in=image,
        )
        self._next_id += 1
        return track

    def _observe(
        self,
        track: _Track,
        instance: Detection,
        embedding: np.ndarray | None,
        point: np.ndarray | None,
        image: np.ndarray | None = None,
    ):
        p, elapsed = self.params, track.misses + 1
        if image is not None:
            track.seen_in = image
        track.score = (1.0 - p.score_weight) * track.score + p.score_weight * float(instance.score)
        track.label, track.mask = instance.label, instance.mask
        track.mask_centre = _mask_centre(instance.mask)
        track.pixel.observe(track.mask_centre, elapsed, p.motion_weight)
        if embedding is not None:
            blended = (
                embedding
                if track.embedding is None
                else track.embedding + p.appearance_update * (embedding - track.embedding)
            )
            track.embedding = blended / max(float(np.linalg.norm(blended)), 1e-12)
        if point is not None:
            if track.centroid is None:
                track.centroid = _Motion(point)
            else:
                track.centroid.observe(point, elapsed, p.motion_weight)
        track.hits += 1
        track.misses = 0

    def _result(self, detections: dict[int, int], num_instances: int) -> TrackingResult:
        """The published tracks; detections: track id -> this frame's instance index."""
        p = self.params
        published = [t for t in self._tracks if t.confirmed(p.min_hits) and t.score >= p.publish_score]
        published.sort(key=lambda t: -t.score)
        track_ids: list[int | None] = [None] * num_instances
        tracks = []
        for track in published:
            detection = detections.get(track.id)
            if detection is not None:
                track_ids[detection] = track.id
            if detection is not None:
                mask = track.mask
            elif track.checked_mask is not None:
                mask = track.checked_mask
            elif track.misses > p.publish_misses or p.image_check_tolerance > 0 and track.seen_in is not None:
                continue
            else:
                mask = track.predicted_mask(track.misses)
            if not mask.any():  # predicted out of the image
                continue
            tracks.append(
                TrackedInstance(track.id, track.label, track.score, detection, mask, track.hits, track.misses)
            )
        return TrackingResult(tuple(tracks), tuple(track_ids))


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of bool masks a [M,H,W] and b [N,H,W] -> float [M,N] (0 where both are empty)."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    intersection = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1.0), 0.0)


def image_shift(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(dx, dy) pixels by which the scene in `current` is moved relative to `previous` (images [H,W] or
    [H,W,3] of one size): phase correlation of the grey images under a Hann window, the peak refined by the
    centroid of its 3x3 neighbourhood. Tracker.update's camera_shift for a camera that pans or tilts (a
    rotation about the optical centre moves the image nearly uniformly); objects moving on their own barely
    move the peak when the background dominates the image."""
    first, second = _windowed_grey(previous), _windowed_grey(current)
    spectrum = np.fft.rfft2(second) * np.conj(np.fft.rfft2(first))
    correlation = np.fft.irfft2(spectrum / np.maximum(np.abs(spectrum), 1e-12), s=first.shape)
    height, width = correlation.shape
    peak_y, peak_x = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    steps = np.arange(-1, 2)
    patch = np.clip(correlation[np.ix_((peak_y + steps) % height, (peak_x + steps) % width)], 0.0, None)
    total = max(float(patch.sum()), 1e-12)
    dy = peak_y + float(patch.sum(1) @ steps) / total
    dx = peak_x + float(patch.sum(0) @ steps) / total
    # Shifts past half the image are the negative ones (the correlation is circular).
    return (dx - width if dx > width / 2 else dx), (dy - height if dy > height / 2 else dy)


def _windowed_grey(image: np.ndarray) -> np.ndarray:
    """float64 [H,W]: the channel mean, minus its mean, times a 2D Hann window (no edge in the spectrum)."""
    grey = image.astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    height, width = grey.shape
    return (grey - grey.mean()) * np.outer(np.hanning(height), np.hanning(width))


def _mask_centre(mask: np.ndarray) -> np.ndarray:
    """(x, y) mean pixel of a mask, float64 [2] (the image centre for an empty mask)."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return np.array([(mask.shape[1] - 1) / 2, (mask.shape[0] - 1) / 2])
    return np.array([xs.mean(), ys.mean()])


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """mask moved by (dx, dy) pixels; what leaves the image is lost."""
    if dx == 0 and dy == 0:
        return mask
    height, width = mask.shape
    out = np.zeros_like(mask)
    if abs(dx) < width and abs(dy) < height:
        out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = mask[
            max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
    return out


def _unit_vectors(vectors: Sequence[np.ndarray | None] | None, count: int) -> list[np.ndarray | None]:
    """float64 unit vectors (None stays None, as does a zero vector); None -> count Nones."""
    if vectors is None:
        return [None] * count
    if len(vectors) != count:
        raise ValueError(f"{len(vectors)} embeddings for {count} instances")
    out: list[np.ndarray | None] = []
    for vector in vectors:
        norm = 0.0 if vector is None else float(np.linalg.norm(vector))
        out.append(np.asarray(vector, np.float64) / norm if norm > 0 else None)
    return out
