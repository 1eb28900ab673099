"""The tracking stage of the frame pipeline: a camera stream's instances through pmp_ros.tracking.Tracker.

The stream's frames are predicted with the score threshold lowered to tracking.DETECTION_FLOOR
(`detection_settings`), so weak instances continue tracks while only new_track_score starts one. Per frame,
`observe` gathers what the tracker reads beside the instances (FrameCues: each instance's 3D centroid when
the frame has depth, objects3d.object_centroids: the centroid the node publishes; the camera's image shift
since the previous frame, tracking.image_shift; the frame itself, where a track was missed the tracker checks
the image for it), and `follow` advances the tracks and returns the published ones (TrackedFrame):
smoothed scores >= the publishing threshold (TrackerParams.publish_score), stable ids. `track` does both;
the tracking evaluation (pmp_ros.eval.tracking) keeps each frame's cues and replays `follow` for every
setting of its grid.

A frame answered alone (the segment service, tracking off) has no stream history: `above_threshold` cuts a
prediction made at the detection threshold down to what predicting at the publishing threshold gives.

ROS-free (numpy); not thread-safe: one stream's frames come in order from one thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pmp_ros.model.config import InferenceConfig
from pmp_ros.model.inference import Instance, Prediction
from pmp_ros.objects3d import mask_box, object_centroids
from pmp_ros.tracking import DETECTION_FLOOR, Tracker, TrackerParams, TrackingResult, image_shift

# image_shift runs on the frame decimated to at most this width: the evaluation's frames are this wide (no
# decimation there), and a pan moves the whole image, which phase correlation finds at low resolution too
# (at 1280x720 the full-size FFTs would cost tens of milliseconds per frame).
SHIFT_MAX_WIDTH = 320


def detection_settings(cfg: InferenceConfig) -> InferenceConfig:
    """The inference settings the tracked stream is predicted with: cfg with its score threshold lowered to
    DETECTION_FLOOR (kept when already lower)."""
    return replace(cfg, score_threshold=min(DETECTION_FLOOR, cfg.score_threshold))


def above_threshold(prediction: Prediction, score_threshold: float) -> Prediction:
    """The instances scoring >= score_threshold and their pixels: what predicting at that threshold gives,
    since the Predictor paints instances by decreasing score (a weaker one never took a stronger one's
    pixels) and only the threshold decides which are kept."""
    kept = [instance for instance in prediction.instances if instance.score >= score_threshold]
    if len(kept) == len(prediction.instances):
        return prediction
    keep = np.zeros(max(i.id for i in prediction.instances) + 1, prediction.label_image.dtype)
    for instance in kept:
        keep[instance.id] = 1
    return replace(prediction, label_image=prediction.label_image * keep[prediction.label_image], instances=kept)


@dataclass(frozen=True)
class FrameCues:
    """What the tracker reads of a frame beside its instances: centroids, (x, y, z) metres or None per
    instance, or None without depth; camera_shift, (dx, dy) pixels since the previous frame, None for the
    first; image, the frame (uint8 [H,W,3]), or None: no image check where a track was missed."""

    centroids: tuple[tuple[float, float, float] | None, ...] | None
    camera_shift: tuple[float, float] | None
    image: np.ndarray | None


@dataclass(frozen=True)
class TrackedFrame:
    """One frame through the tracker: prediction, the published tracks (TrackingStage.follow); track_ids,
    its instance id -> track id; result, the tracker's own (every published track with its full predicted
    mask, and which instance it was found with); live_ids, the tracks alive after the frame."""

    prediction: Prediction
    track_ids: dict[int, int]
    result: TrackingResult
    live_ids: frozenset[int]


class TrackingStage:
    """One camera stream's tracker and what it needs from the previous frame."""

    def __init__(self) -> None:
        self._tracker = Tracker()
        self.reset()

    def reset(self) -> None:
        """Forget every track (the stream stopped, or tracking was turned off). Ids go on from the last one
        given, so none is given to two objects while the node runs (Instance.msg: ids are never reused)."""
        self._tracker = Tracker(first_id=self._tracker.next_id)
        self._frame_size: tuple[int, int] | None = None
        self._prompts: tuple[str, ...] = ()
        self._previous_grey: np.ndarray | None = None  # uint16 [h,w]: the previous frame for image_shift

    def track(
        self,
        prediction: Prediction,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        k,
        prompts: Sequence[str],
        params: TrackerParams,
    ) -> tuple[Prediction, dict[int, int]]:
        """Advance the tracks by one frame (observe, then follow); returns (the published tracks as a
        Prediction, its instance id -> track id).

        prediction: the frame's, made with detection_settings; rgb: uint8 [H,W,3]; depth: [H,W] registered
        (uint16 mm or float m) and k: its intrinsics (3x3 or 9 values), or None; prompts: the model's prompts
        this frame; params: the tracker's settings."""
        tracked = self.follow(prediction, self.observe(prediction, rgb, depth, k), prompts, params)
        return tracked.prediction, tracked.track_ids

    def observe(self, prediction: Prediction, rgb: np.ndarray, depth: np.ndarray | None, k) -> FrameCues:
        """What the tracker reads of this frame beside the instances (arguments as `track`); remembers the
        frame for the next one's camera shift. A frame of another size (another camera or resolution: masks
        of two sizes never match) ends every track first."""
        if rgb.shape[:2] != self._frame_size:
            self.reset()
            self._frame_size = rgb.shape[:2]
        instances = prediction.instances
        centroids = None
        if depth is not None and k is not None and instances:
            centroids = tuple(object_centroids([i.mask for i in instances], depth, k, boxes=[i.box for i in instances]))
        return FrameCues(centroids, self._camera_shift(rgb), rgb)

    def follow(
        self, prediction: Prediction, cues: FrameCues, prompts: Sequence[str], params: TrackerParams
    ) -> TrackedFrame:
        """Advance the tracks with the frame's instances and its cues (`observe`). When the prompts change (the
        instruction did), the tracks of labels they no longer name end. The TrackedFrame's prediction holds the
        published tracks best first (ids 1..n in that order), each Instance with the track's smoothed score; a
        track found this frame has its instance's mask and embedding, one not found its predicted mask where no
        found one is (embedding None; dropped when nothing of it is left)."""
        prompts = tuple(prompts)
        if prompts != self._prompts:
            self._tracker.retain_labels(prompts)
            self._prompts = prompts
        self._tracker.params = params
        instances = prediction.instances
        result = self._tracker.update(
            instances, [i.embedding for i in instances], cues.centroids, cues.camera_shift, image=cues.image
        )
        published, track_ids = _published(prediction, result, prompts)
        return TrackedFrame(published, track_ids, result, self._tracker.live_track_ids)

    def _camera_shift(self, rgb: np.ndarray) -> tuple[float, float] | None:
        """(dx, dy) pixels the image moved since the previous frame; None for the first frame."""
        stride = max(1, math.ceil(rgb.shape[1] / SHIFT_MAX_WIDTH))
        small = rgb[::stride, ::stride]
        # The channel sum, not the mean: phase correlation ignores the grey scale, and integer adds cost a
        # twentieth of a float mean over the channel axis.
        grey = small[..., 0].astype(np.uint16) + small[..., 1] + small[..., 2]
        previous, self._previous_grey = self._previous_grey, grey
        if previous is None:
            return None
        dx, dy = image_shift(previous, grey)
        return dx * stride, dy * stride


def _published(
    prediction: Prediction, result: TrackingResult, prompts: tuple[str, ...]
) -> tuple[Prediction, dict[int, int]]:
    """The tracks of `result` as a Prediction on prediction's instances (TrackingStage.track), and its
    instance id -> track id. Found tracks keep their instances' pixels; the predicted masks of tracks not
    found take the pixels left, by decreasing smoothed score."""
    instances, label_image = prediction.instances, prediction.label_image
    found_ids = np.zeros(max((i.id for i in instances), default=0) + 1, bool)
    for track in result.tracks:
        if track.detection is not None:
            found_ids[instances[track.detection].id] = True
    taken = found_ids[label_image]
    masks: list[np.ndarray | None] = []  # per published track: the predicted pixels it keeps, None when found
    tracks = []
    for track in result.tracks:
        if track.detection is not None:
            masks.append(None)
        else:
            visible = track.mask & ~taken
            if not visible.any():
                continue
            taken |= visible
            masks.append(visible)
        tracks.append(track)
    renumber = np.zeros(len(found_ids), label_image.dtype)
    published: list[Instance] = []
    track_ids: dict[int, int] = {}
    for new_id, (track, mask) in enumerate(zip(tracks, masks), start=1):
        if mask is None:
            instance = instances[track.detection]
            renumber[instance.id] = new_id
            published.append(replace(instance, id=new_id, score=track.score))
        else:
            # The track's label is one of the prompts: retain_labels ended the others'.
            published.append(
                Instance(
                    new_id,
                    track.label,
                    prompts.index(track.label),
                    track.score,
                    mask_box(mask),
                    int(np.count_nonzero(mask)),
                    mask,
                )
            )
        track_ids[new_id] = track.track_id
    tracked = renumber[label_image]
    for instance, mask in zip(published, masks):
        if mask is not None:
            tracked[mask] = instance.id
    return replace(prediction, label_image=tracked, instances=published), track_ids
