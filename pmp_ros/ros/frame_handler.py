"""What the node's worker does with the frames it takes (node.py's `_work` loop), on the model's thread:
answer the segment requests waiting for a frame, then segment the cameras' frames for their streams through
the frame pipeline (perception.FramePipeline: the prompts planned once per frame; frames of several cameras
whose plans give the same prompts predicted in one forward; tracked or thresholded, resolved, located,
measured), publish each result in its camera's namespace and show the first camera's on the live view.

Exists while the node is configured (its model loaded): made at configure, dropped at cleanup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.language.resolve import PromptPlan
from pmp_ros.model.config import InferenceConfig
from pmp_ros.model.inference import Prediction
from pmp_ros.perception.frame import FrameInput, FramePipeline, FrameSettings
from pmp_ros.perception.tracking_stage import TrackingStage
from pmp_ros.ros.camera_stream import LOG_THROTTLE_S, Camera, ConvertedFrame, for_cameras
from pmp_ros.ros.frame_outputs import FrameOutputs
from pmp_ros.ros.image_conversion import ImageConversionError
from pmp_ros.ros.live_view import live_frame, open_live_view
from pmp_ros.ros.node_settings import NodeSettings
from pmp_ros.ros.pipeline import Frame, SegmentRequest, Target


@dataclass(frozen=True)
class StreamFrame:
    """A camera's frame segmented for the camera's stream: its instruction (target) and the prompts planned
    for it, once (the batch groups frames by them, FramePipeline.process uses them)."""

    camera: Camera
    frame: Frame
    target: Target
    converted: ConvertedFrame
    plan: PromptPlan


class BatchedPrediction(NamedTuple):
    """A frame's prediction from one forward over several cameras' frames, and that forward's seconds."""

    prediction: Prediction
    seconds: float


class FrameHandler:
    """The worker's frame steps around one frame pipeline. checkpoint: the checkpoint's InferenceConfig
    (what the parameters left unset mean); train_classes: the model's (the default context)."""

    def __init__(self, pipeline: FramePipeline, checkpoint: InferenceConfig, train_classes: tuple[str, ...], logger):
        self.pipeline, self.checkpoint, self.train_classes, self.logger = pipeline, checkpoint, train_classes, logger
        self.live_view = None  # viz.live_view.LiveView while the foxglove_port parameter asks for one
        self.shown: Camera | None = None  # the camera the live view shows

    def use(self, settings: NodeSettings) -> None:
        """Take the text settings (context, templates) for the next frames."""
        self.pipeline.context, self.pipeline.templates = settings.text(self.train_classes)

    def serve_requests(
        self, camera: Camera, frame: Frame, requests: list[SegmentRequest], settings: NodeSettings
    ) -> ConvertedFrame | None:
        """Convert a camera's frame and answer the segment requests waiting for it (each frame alone: an
        answer must not move the stream's tracks); returns the converted frame, or None when it cannot be used
        (counted and logged)."""
        try:
            converted = camera.convert(frame, settings)
            for request in requests:
                request.outputs = self.segment(frame, converted, request.parsed, request.instruction, settings)
            if requests:
                camera.frame_health.used()
            return converted
        except ImageConversionError as error:
            camera.bad_input("image", error)
            camera.frame_health.rejected(f"bad image: {error}")
            for request in requests:
                request.error = f"the camera frame could not be used: {error}"
        except Exception as error:  # keep serving frames; the diagnostics report the error count
            camera.frame_failed(error)
            for request in requests:
                request.error = request.error or f"segmentation failed: {type(error).__name__}: {error}"
        finally:
            for request in requests:
                request.done.set()
        return None

    def stream_frame(self, camera: Camera, frame: Frame, target: Target, converted: ConvertedFrame) -> StreamFrame:
        """A converted frame with its instruction's prompts planned."""
        return StreamFrame(camera, frame, target, converted, self.pipeline.plan(target.parsed))

    def stream(self, frames: list[StreamFrame], settings: NodeSettings) -> None:
        """Segment each frame for its camera's stream and publish it; a failure is counted and logged per
        frame, and the worker goes on."""
        for item, batched in zip(frames, self._batched_predictions(frames)):
            try:
                self._stream(item, batched, settings)
            except Exception as error:  # keep serving frames; the diagnostics report the error count
                item.camera.frame_failed(error)

    def _batched_predictions(self, frames: list[StreamFrame]) -> list[BatchedPrediction | None]:
        """Per frame, its prediction from one forward over every frame with the same prompts
        (FramePipeline.batches); None for a frame predicted alone (by FramePipeline.process). A failed batch
        is logged and its frames are predicted alone."""
        found: list[BatchedPrediction | None] = [None] * len(frames)
        if len(frames) < 2:
            return found
        for members in self.pipeline.batches([item.plan for item in frames]):
            start = time.monotonic()
            try:
                predictions = self.pipeline.predict([frames[i].converted.rgb for i in members], frames[members[0]].plan)
            except Exception as error:
                self.logger.warning(
                    f"a batch of {len(members)} cameras' frames failed ({type(error).__name__}: {error}); "
                    "predicting them one by one",
                    throttle_duration_sec=LOG_THROTTLE_S,
                )
                continue
            seconds = time.monotonic() - start
            for index, prediction in zip(members, predictions):
                found[index] = BatchedPrediction(prediction, seconds)
                frames[index].camera.batched_frames += 1
        return found

    def _stream(self, item: StreamFrame, batched: BatchedPrediction | None, settings: NodeSettings) -> None:
        """Segment a camera's frame for its instruction and publish it in the camera's namespace, unless the
        instruction changed meanwhile."""
        camera, converted, target = item.camera, item.converted, item.target
        start = time.monotonic() - (batched.seconds if batched else 0.0)
        tracking = camera.tracking if settings.tracking else None
        if tracking is None:  # here, not where the parameter changes: only this thread may touch the tracks
            camera.tracking.reset()
        cloud = camera.wants_cloud(settings)
        outputs = self.segment(
            item.frame, converted, target.parsed, target.instruction, settings, cloud, item.plan, batched, tracking
        )
        inference_s = time.monotonic() - start
        if camera.publish(item.frame, target, converted.rgb, outputs, settings.use_depth):
            camera.stats.add(time.monotonic() - item.frame.received, inference_s)
            self._show(camera, converted.rgb, outputs, settings.use_depth)

    def segment(
        self,
        frame: Frame,
        converted: ConvertedFrame,
        parsed: ParsedInstruction,
        instruction: str,
        settings: NodeSettings,
        cloud: bool = False,
        plan: PromptPlan | None = None,
        batched: BatchedPrediction | None = None,
        tracking: TrackingStage | None = None,
    ) -> FrameOutputs:
        """FrameOutputs of one frame for one instruction through the frame pipeline (FramePipeline.process:
        plan unless given, predict or take the batch's prediction, follow the stream's tracks with `tracking`
        or cut at the score threshold, resolve, locate, measure; cloud: with the objects' points)."""
        score_threshold = settings.inference(self.checkpoint).score_threshold
        frame_settings = FrameSettings(
            score_threshold,
            tracker=settings.tracker_params(score_threshold),
            voxel_m=settings.object_voxel_size,
            cloud=cloud,
            depth_range=settings.depth_range,
        )
        result = self.pipeline.process(
            FrameInput(converted.rgb, converted.depth, converted.k),
            parsed,
            frame_settings,
            plan=plan,
            prediction=batched.prediction if batched else None,
            tracking=tracking,
        )
        return FrameOutputs.of(frame.msg.header, instruction, parsed, result, cloud)

    # -- the live view -------------------------------------------------------------------------------
    def open_live_view(self, settings: NodeSettings, camera: Camera) -> None:
        """The Foxglove live view of the foxglove_port parameter (0: none) showing `camera` (the first); one
        that cannot open (a port in use) is said and the node goes on without it."""
        port, host = settings.foxglove_port, settings.foxglove_host
        self.shown = camera
        try:
            self.live_view = open_live_view(port, host)
        except Exception as error:
            self.logger.warning(f"no live view on {host}:{port}: {type(error).__name__}: {error}")
            return
        if self.live_view is not None:
            self.logger.info(f"live view: Foxglove on ws://{host}:{self.live_view.port}{for_cameras([camera])}")

    def _show(self, camera: Camera, rgb, outputs: FrameOutputs, use_depth: bool) -> None:
        """Send a published frame of the shown camera to the live view, if one is open and watched; a failure
        is logged, never the frame's."""
        if self.live_view is None or camera is not self.shown or not self.live_view.subscribed_topics():
            return
        objects = outputs.objects if use_depth else None
        try:
            self.live_view.publish(
                live_frame(rgb, outputs.result, outputs.points, objects, outputs.cloud, camera.last_status)
            )
        except Exception as error:
            self.logger.warning(
                f"live view failed: {type(error).__name__}: {error}", throttle_duration_sec=LOG_THROTTLE_S
            )

    def close_live_view(self) -> None:
        if self.live_view is not None:
            self.live_view.close()
            self.live_view = None
