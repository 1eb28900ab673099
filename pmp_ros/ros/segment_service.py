"""The segment service: one result for one instruction on the next frame of the node's first camera.

Each request waits in a thread of the service node's multi-threaded executor (node.py's main) until the
worker serves it with the first frame that arrives after it (pipeline.FrameSlot.add_request: the worker sets
its outputs, or its error, and then `done`), so requests block neither the image stream nor each other; the
instruction topics' target is left as it is. At most MAX_CONCURRENT_SEGMENTS requests wait at once; one
more is answered "busy". A failure while answering is counted by the service's supervisor and answered with
its cause (never the end of the service's thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pmp_ros.language.parse import InstructionParseError, ParsedInstruction, parse_instruction
from pmp_ros.ros.camera_stream import Camera
from pmp_ros.ros.frame_outputs import FrameOutputs
from pmp_ros.ros.node_settings import NodeSettings
from pmp_ros.ros.pipeline import SegmentRequest, instruction_problem, segment_timeout
from pmp_ros.ros.supervision import Supervisor, cause
from pmp_ros_msgs.srv import Segment

# Segment-service requests served at once: each waits in a thread of the service node's executor for its
# frame; one thread more answers further requests with "busy" at once.
MAX_CONCURRENT_SEGMENTS = 4
SERVICE_EXECUTOR_THREADS = MAX_CONCURRENT_SEGMENTS + 1


class SegmentService:
    """The service's answers and counters. camera: the camera it serves; settings: the node's settings in
    force; refusal: why the node cannot serve now (its worker failed, it is not active), or None."""

    def __init__(
        self,
        camera: Camera,
        settings: Callable[[], NodeSettings],
        refusal: Callable[[], str | None],
        supervisor: Supervisor,
    ) -> None:
        self.camera, self.settings, self.refusal, self.supervisor = camera, settings, refusal, supervisor
        self.requests = self.timeouts = 0
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    def diagnostics_values(self) -> dict[str, int]:
        return {"segment_requests": self.requests, "segment_timeouts": self.timeouts}

    def on_request(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        """answer's response; an exception there is counted and answered with its cause."""
        try:
            return self.answer(request, response)
        except Exception as error:
            self.supervisor.record(error)
            response.success = False
            response.error = f"internal error: {cause(error)}"
            return response

    def answer(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        """One result for the request's instruction on the first frame that arrives after it."""
        self.requests += 1
        response.success = False
        refusal = self.refusal()
        if refusal:
            response.error = refusal
            return response
        try:
            requested_timeout = segment_timeout(request.timeout)
        except ValueError as error:
            response.error = str(error)
            return response
        text = request.instruction
        settings = self.settings()
        max_length = settings.max_instruction_length
        problem = instruction_problem(text, max_length)
        if problem:
            response.error = problem
            return response
        try:
            parsed = parse_instruction(text, max_length=max_length)
        except InstructionParseError as error:
            response.error = str(error)
            return response
        with self._waiting_lock:
            if self._waiting >= MAX_CONCURRENT_SEGMENTS:
                response.error = f"busy: {MAX_CONCURRENT_SEGMENTS} segment requests are already waiting"
                return response
            self._waiting += 1
        try:
            waiting = self.wait(parsed, text, requested_timeout or settings.segment_timeout)
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        if isinstance(waiting, str):
            response.error = waiting
            return response
        if waiting.error:
            response.error = waiting.error
            return response
        outputs: FrameOutputs = waiting.outputs
        response.success = True
        response.result, response.points, response.objects = outputs.result, outputs.points, outputs.objects
        return response

    def wait(self, parsed: ParsedInstruction, text: str, frame_timeout: float) -> SegmentRequest | str:
        """The served request, or why there is none: no camera frame within `frame_timeout` seconds, or a frame
        came but the worker, busy with earlier frames, did not take it within segment_model_timeout."""
        waiting = SegmentRequest(parsed, text, after=time.monotonic())
        camera = self.camera
        topic = camera.image_subscription.topic_name if camera.image_subscription else camera.topic("image")
        camera.slot.add_request(waiting)
        if not waiting.done.wait(frame_timeout) and waiting.frame_arrived is None:
            if camera.slot.withdraw_request(waiting):
                self.timeouts += 1
                return f"no camera frame within {frame_timeout:.2f} s on {topic}"
        model_timeout = self.settings().segment_model_timeout
        if not waiting.done.wait(model_timeout) and camera.slot.withdraw_request(waiting):
            self.timeouts += 1
            return (
                f"a camera frame arrived on {topic}, but the model, busy with earlier frames, did not take it "
                f"within {model_timeout:.2f} s (segment_model_timeout)"
            )
        waiting.done.wait()  # taken by the worker: it finishes it
        return waiting
