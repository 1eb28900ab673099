"""One camera frame's way from pixels to results, without ROS: what the node publishes and what every
evaluation scores.

    pipeline = FramePipeline(predictor, context, templates)
    plan = pipeline.plan(parsed)                    # the prompts, planned once per frame
    result = pipeline.process(FrameInput(rgb, depth, k), parsed, settings, plan=plan, tracking=stage)

Several frames (the node's cameras) whose plans give the same prompts run as one forward: `batches` groups
them, `predict` runs a group, and `process` takes each frame's prediction.

`process` predicts the plan's prompts (or takes `prediction`, made for them in a batch of several frames:
`predict`), follows the instances with the stream's tracker (TrackingStage: the stream's history) or cuts
them at the publishing threshold (above_threshold: a frame answered alone), resolves the instruction on
them (language.resolve.apply), locates each chosen instance's point (geometry.locate_instances) and, when the
frame has depth and intrinsics, measures it in 3D (objects3d.measure_objects). An instruction without a
target (only exclusions) gives an empty result without running the model, so that a consumer sees there is
nothing to act on.

The predictor's settings (its score threshold: tracking_stage.detection_settings while tracking) are the
caller's; the prompts' text features are encoded only when the prompts, context or templates change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pmp_ros.geometry import DEPTH_RANGE_M, PointEstimate, locate_instances
from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.language.resolve import PromptPlan, Resolution, apply, plan_prompts, resolve
from pmp_ros.model.inference import Prediction, Predictor
from pmp_ros.objects3d import DEFAULT_PARAMS as OBJECTS3D_PARAMS
from pmp_ros.objects3d import Object3D, measure_objects
from pmp_ros.perception.tracking_stage import TrackingStage, above_threshold
from pmp_ros.tracking import TrackerParams, TrackingResult

DEPTH_WINDOW = 5  # pixels around an instance's interior point whose median depth places it


@dataclass(frozen=True)
class FrameInput:
    """A camera frame. rgb: uint8 [H,W,3]; depth: [H,W] registered to it (uint16 mm or float m), or None;
    k: depth's intrinsics (3x3 or CameraInfo.k's 9 values), or None."""

    rgb: np.ndarray
    depth: np.ndarray | None = None
    k: np.ndarray | Sequence[float] | None = None


@dataclass(frozen=True)
class FrameSettings:
    """How a frame is handled. score_threshold: the publishing threshold (instances, or tracks by their
    smoothed score, below it are not published); tracker: the tracker's settings, used with a tracking stage
    (the node's: its tracking_* parameters with publish_score = score_threshold); voxel_m: the cloud's voxel
    size (0 keeps every point); cloud: also collect each 3D object's coloured points; depth_range: the valid
    depth readings (metres, inclusive) where points and objects are measured (the node's depth_min and
    depth_max)."""

    score_threshold: float
    tracker: TrackerParams | None = None
    voxel_m: float = 0.0
    cloud: bool = False
    depth_range: tuple[float, float] = DEPTH_RANGE_M


@dataclass(frozen=True)
class FrameResult:
    """One frame's results for one instruction.

    plan: the prompts the model was given; candidates: the instances after tracking or the threshold, before
    the instruction is resolved (every instance of every prompt); prediction: the resolved ones, best first
    (label image restricted to their pixels): what is published; resolution: which candidates were chosen and
    how; track_ids: prediction's instance id -> track id (empty without tracking); tracking: the tracker's
    own result of the frame, or None; points: one PointEstimate per published instance; objects: one Object3D
    per published instance, or None without depth and intrinsics (or without an instance); timings: seconds
    per step (predict, track, resolve, locate, measure; predict 0 for a prediction made in a batch).
    """

    plan: PromptPlan
    candidates: Prediction
    prediction: Prediction
    resolution: Resolution
    track_ids: dict[int, int]
    tracking: TrackingResult | None
    points: list[PointEstimate]
    objects: list[Object3D] | None
    timings: dict[str, float] = field(default_factory=dict)


class FramePipeline:
    """The frame path around one Predictor. context: the classes the prompts compete with (and what
    "everything" means); templates: the prompt templates, None = the model's own. Both are public, replaced
    as a whole to change them (the node's parameters); the next frame uses them."""

    def __init__(
        self, predictor: Predictor, context: Sequence[str] = (), templates: Sequence[str] | None = None
    ) -> None:
        self.predictor = predictor
        self.context = tuple(context)
        self.templates = None if templates is None else tuple(templates)
        self._encoded: tuple | None = None  # (prompts, context, templates) whose text the predictor holds

    def plan(self, parsed: ParsedInstruction) -> PromptPlan:
        """The model's prompts for an instruction (targets, reference, excluded phrases) in this context."""
        return plan_prompts(parsed, self.context)

    def predict(self, images: Sequence[np.ndarray], plan: PromptPlan) -> list[Prediction]:
        """One Prediction per image (uint8 [H,W,3]) for the plan's prompts, in one forward pass: a batch of
        frames whose instructions plan the same prompts."""
        self._use_prompts(plan.prompts)
        return self.predictor.predict(list(images), semantic=False)

    def batches(self, plans: Sequence[PromptPlan]) -> list[list[int]]:
        """The frames (indices into plans, one plan per frame) that `predict` can run as one batch: groups of
        at least two whose plans give the same prompts, each a target at least (a plan without one runs no
        model). A frame in no group is predicted alone (by `process`)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, plan in enumerate(plans):
            if plan.num_targets:
                groups.setdefault(tuple(plan.prompts), []).append(index)
        return [members for members in groups.values() if len(members) > 1]

    def process(
        self,
        frame: FrameInput,
        parsed: ParsedInstruction,
        settings: FrameSettings,
        *,
        plan: PromptPlan | None = None,
        prediction: Prediction | None = None,
        tracking: TrackingStage | None = None,
    ) -> FrameResult:
        """The frame's results for the instruction (module docstring). plan: pipeline.plan(parsed), when
        the caller planned it already (to group a batch); prediction: the frame's, made for the plan's prompts
        with the predictor's settings (in a batch); tracking: the camera stream's tracking stage, which this
        frame advances (settings.tracker then required), or None for per-frame instances."""
        if tracking is not None and settings.tracker is None:
            raise ValueError("a tracking stage needs settings.tracker")
        plan = self.plan(parsed) if plan is None else plan
        timings = dict.fromkeys(("predict", "track", "resolve", "locate", "measure"), 0.0)
        track_ids: dict[int, int] = {}
        tracked = None
        if not plan.num_targets:
            candidates = Prediction(np.zeros(frame.rgb.shape[:2], np.uint16), [], None)
            published, resolution = candidates, resolve(parsed, plan, [])
        else:
            start = time.perf_counter()
            if prediction is None:
                prediction = self.predict([frame.rgb], plan)[0]
                timings["predict"] = time.perf_counter() - start
            start = time.perf_counter()
            if tracking is not None:
                following = tracking.follow(
                    prediction,
                    tracking.observe(prediction, frame.rgb, frame.depth, frame.k),
                    plan.prompts,
                    settings.tracker,
                )
                candidates, track_ids, tracked = following.prediction, following.track_ids, following.result
            else:
                candidates = above_threshold(prediction, settings.score_threshold)
            timings["track"] = time.perf_counter() - start
            start = time.perf_counter()
            published, resolution = apply(candidates, parsed, plan, frame.depth, frame.k)
            timings["resolve"] = time.perf_counter() - start
            track_ids = {i.id: track_ids[i.id] for i in published.instances} if track_ids else {}
        start = time.perf_counter()
        instances = published.instances
        masks = [i.mask for i in instances]
        points = locate_instances(masks, frame.depth, frame.k, DEPTH_WINDOW, valid_range=settings.depth_range)
        timings["locate"] = time.perf_counter() - start
        start = time.perf_counter()
        objects = None
        if frame.depth is not None and frame.k is not None and masks:
            objects = measure_objects(
                masks,
                frame.depth,
                frame.k,
                instance_ids=[i.id for i in instances],
                boxes=[i.box for i in instances],
                pixels=[(p.u, p.v) for p in points],
                cloud_rgb=frame.rgb if settings.cloud else None,
                voxel_m=settings.voxel_m,
                params=replace(OBJECTS3D_PARAMS, depth_range=settings.depth_range),
            )
        timings["measure"] = time.perf_counter() - start
        return FrameResult(plan, candidates, published, resolution, track_ids, tracked, points, objects, timings)

    def _use_prompts(self, prompts: Sequence[str]) -> None:
        """Give the predictor these prompts' text features (encoded only when they or the text settings
        changed)."""
        wanted = (tuple(prompts), self.context, self.templates)
        if self._encoded != wanted:
            self._encoded = None  # until set_prompts has succeeded
            self.predictor.set_prompts(wanted[0], self.context, self.templates)
            self._encoded = wanted
