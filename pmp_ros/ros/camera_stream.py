"""One camera's stream in the node (an entry of the `cameras` parameter, or the single camera): its inputs
(newest frame, depth, camera info), subscriptions, publishers, counters and diagnostics.

The node's executor thread runs the input callbacks, which only store messages; the worker thread converts a
frame (`convert`: colour, and the depth matched to it) and publishes its results (`publish`); the diagnostics
timer asks for its status once a second (`diagnostics`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from pmp_ros.geometry import depth_in_metres, has_intrinsics
from pmp_ros.language.limits import ECHO_LENGTH, shorten
from pmp_ros.perception.tracking_stage import TrackingStage
from pmp_ros.ros import interface, matching, messages, qos
from pmp_ros.ros.frame_outputs import FrameOutputs
from pmp_ros.ros.health import DepthHealth, FrameHealth
from pmp_ros.ros.image_conversion import ImageConversionError, compressed_to_rgb8, depth_to_array, image_to_rgb8
from pmp_ros.ros.input_watch import InputWatch, TopicState
from pmp_ros.ros.node_settings import NodeSettings
from pmp_ros.ros.outputs import OnDemandOutputs
from pmp_ros.ros.pipeline import ArrivalCounter, DepthCache, Frame, FrameSlot, RollingStats, Target
from pmp_ros_msgs.msg import LabelledPointArray, Object3DArray, SegmentationResult

LOG_THROTTLE_S = 5.0
# Largest rgb8 frame (MB, rounded down) that arrived every time over best-effort QoS with config/fastdds.xml
# (16 MiB shared-memory segment); larger ones arrive sometimes or never, and neither side reports it.
# Measured with bench/bench_frame_size.py (docs/node.md); reliable QoS carried the largest image the node
# accepts.
BEST_EFFORT_MAX_FRAME_MB = 16


@dataclass(frozen=True)
class ConvertedFrame:
    """A camera frame as arrays: rgb uint8 [H,W,3]; depth [H,W] metres (NaN outside depth_min..depth_max)
    matched to it, or None; k: the depth's intrinsics (CameraInfo.k), or None."""

    rgb: np.ndarray
    depth: np.ndarray | None
    k: object | None


@dataclass(frozen=True)
class NodeStatus:
    """What every camera's diagnostics share: the node's values (lifecycle state, model, failure counts,
    inference settings), the faults of its threads (ERROR), whether it is active, the last configure failure,
    the stamp and the node's fully qualified name."""

    values: dict
    faults: list[str]
    active: bool
    lifecycle_state: str
    startup_error: str
    stamp: object
    node_name: str
    segment_values: dict = field(default_factory=dict)  # the segment service's counters, on its camera


class Camera:
    """One camera's stream. The node's callbacks store its inputs; only the worker thread touches `tracking`."""

    def __init__(self, node, name: str, slot: FrameSlot) -> None:
        self.node = node  # the SegmenterNode: its publishers, subscriptions and logger are the camera's
        self.name = name  # its namespace, relative to the node's; "" = the single camera on the plain names
        self.slot = slot
        self.depth_cache = DepthCache()
        self.camera_info: CameraInfo | None = None
        self.tracking = TrackingStage()
        self.stats = RollingStats()
        self.arrivals = ArrivalCounter()
        self.bad_images = self.bad_instructions = self.stale_results = self.errors = self.bad_camera_info = 0
        # Whether its recent frames, and their depth, were usable (health.py: the diagnostics' WARN/ERROR).
        self.frame_health = FrameHealth()
        self.depth_health = DepthHealth()
        self.batched_frames = 0  # frames predicted in one forward with other cameras' frames
        # An instruction arrived on the camera's own instruction topics: the shared ones no longer apply to it.
        self.own_instruction = False
        # matching.FollowingSubscription's, while active (depth and info with use_depth only).
        self.image_subscription = self.depth_subscription = self.info_subscription = None
        self.depth_received = self.info_received = 0
        self.watch: InputWatch | None = None  # what its inputs lack, from activation on
        # Created at configure (objects_pub and cloud_pub with use_depth only).
        self.segmentation_pub = self.points_pub = None
        self.on_demand: OnDemandOutputs | None = None  # overlay, markers, label image, detections
        self.last_status: DiagnosticStatus | None = None  # its latest diagnostics (the live view shows them)
        self.objects_pub = self.cloud_pub = None

    @property
    def logger(self):
        return self.node.get_logger()

    def topic(self, name: str) -> str:
        return interface.camera_topic(self.name, name)

    def following(self) -> list:
        """Its camera-input subscriptions (matching.FollowingSubscription) while active."""
        return [s for s in (self.image_subscription, self.depth_subscription, self.info_subscription) if s]

    # -- configure and activate ----------------------------------------------------------------------
    def create_publishers(self, use_depth: bool) -> list:
        """Its output publishers (returned, for the node to destroy at cleanup)."""
        node = self.node
        self.segmentation_pub = node.create_publisher(SegmentationResult, self.topic(interface.SEGMENTATION_TOPIC), 5)
        self.points_pub = node.create_publisher(LabelledPointArray, self.topic(interface.POINTS_TOPIC), 5)
        self.on_demand = OnDemandOutputs(node, self.topic, use_depth)
        publishers = [self.segmentation_pub, self.points_pub, *self.on_demand.publishers()]
        if use_depth:
            self.objects_pub = node.create_publisher(Object3DArray, self.topic(interface.OBJECTS_TOPIC), 5)
            self.cloud_pub = node.create_publisher(PointCloud2, self.topic(interface.OBJECT_POINTS_TOPIC), 2)
            publishers += [self.objects_pub, self.cloud_pub]
        return publishers

    def subscribe(self, settings: NodeSettings) -> None:
        """Its image (and with use_depth, depth and camera info) subscriptions, all following the
        image_reliability setting (matching.FollowingSubscription)."""
        reliability = settings.image_reliability
        if reliability == "best_effort" and settings.image_transport == "raw":
            self.logger.warning(
                f"image_reliability best_effort: raw frames larger than about {BEST_EFFORT_MAX_FRAME_MB} MB "
                f"(4000x3000 rgb8 is 36 MB) arrive sometimes or never over best-effort DDS with "
                f"config/fastdds.xml, and nothing reports it, and a publisher on Fast DDS's defaults delivers "
                f"no 640x480 frame at all; leave image_reliability at auto (docs/node.md)",
                once=True,  # for the node: once per call site
            )
        fix = "set image_reliability:=auto (follows the publishers) or best_effort"
        compressed = settings.image_transport == "compressed"
        image_type, image_topic = (
            (CompressedImage, interface.IMAGE_TOPIC + "/compressed") if compressed else (Image, interface.IMAGE_TOPIC)
        )

        def following(msg_type, topic: str, callback, depth: int):
            return matching.FollowingSubscription(self.node, msg_type, topic, callback, depth, reliability, fix)

        self.image_subscription = following(
            image_type, self.topic(image_topic), lambda msg: self.on_image(msg, compressed), qos.CAMERA_DEPTH
        )
        if settings.use_depth:
            self.depth_subscription = following(
                Image, self.topic(interface.DEPTH_TOPIC), self.on_depth, qos.CAMERA_DEPTH
            )
            self.info_subscription = following(
                CameraInfo, self.topic(interface.DEPTH_INFO_TOPIC), self.on_camera_info, 1
            )
        self.watch = InputWatch(time.monotonic())

    def unsubscribe(self) -> None:
        for subscription in self.following():
            subscription.destroy()
        self.image_subscription = self.depth_subscription = self.info_subscription = None

    # -- inputs (the executor's thread) --------------------------------------------------------------
    def on_image(self, msg, compressed: bool) -> None:
        arrivals = self.arrivals
        missing = arrivals.add(stamp_seconds(msg.header.stamp))
        self.slot.put(Frame(msg, compressed, time.monotonic()))
        if missing:
            subscription = self.image_subscription
            likely = (
                "the subscription is reliable: the camera or its driver dropped them, or a network between"
                if subscription.reliable
                else "frames too large for best-effort QoS, or a lossy network"
            )
            self.logger.warning(
                f"{arrivals.missing} image(s) missing so far on {subscription.topic_name}: the camera's stamps "
                f"({arrivals.rate_hz():.1f} Hz) imply {arrivals.received + arrivals.missing}, {arrivals.received} "
                f"arrived ({likely})",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def on_depth(self, msg: Image) -> None:
        self.depth_received += 1
        self.depth_cache.add(stamp_seconds(msg.header.stamp), msg)

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.info_received += 1
        if has_intrinsics(msg.k):
            self.camera_info = msg
            return
        # The last camera info is what the points use: an uncalibrated one means no 3D until a good one.
        self.camera_info = None
        self.bad_camera_info += 1
        self.logger.warning(
            f"camera info without a calibration on {self.topic(interface.DEPTH_INFO_TOPIC)} (k = {list(msg.k)}; "
            f"fx and fy must be > 0): no 3D positions until a calibrated one arrives",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    # -- the worker's thread -------------------------------------------------------------------------
    def convert(self, frame: Frame, settings: NodeSettings) -> ConvertedFrame:
        """A received frame as arrays, with the depth matched to it; ImageConversionError for a bad image."""
        rgb = compressed_to_rgb8(frame.msg) if frame.compressed else image_to_rgb8(frame.msg)
        depth, k = self._depth_for(frame.msg, rgb.shape[:2], settings)
        return ConvertedFrame(rgb, depth, k)

    def _depth_for(self, image_msg, shape: tuple[int, int], settings: NodeSettings):
        """(depth array, K) matched to the colour frame, or (None, None) without usable depth."""
        camera_info, health = self.camera_info, self.depth_health
        if not settings.use_depth:
            return None, None
        if camera_info is None:
            info_topic = self.topic(interface.DEPTH_INFO_TOPIC)
            health.unusable(
                f"the camera info on {info_topic} has no calibration (k)"
                if self.info_received
                else f"no camera info on {info_topic}"
            )
            return None, None
        nearest = self.depth_cache.nearest(stamp_seconds(image_msg.header.stamp))
        max_age = settings.depth_max_age
        if nearest is None:
            health.unusable(f"no depth image on {self.topic(interface.DEPTH_TOPIC)}")
            return None, None
        offset, depth_msg = nearest
        if abs(offset) > max_age:
            health.out_of_tolerance(offset, max_age)
            return None, None
        try:
            depth = depth_to_array(depth_msg)
            if depth.shape != shape:
                raise ImageConversionError(
                    f"depth image {depth.shape[1]}x{depth.shape[0]} does not match the "
                    f"colour image {shape[1]}x{shape[0]}"
                )
        except ImageConversionError as error:
            self.bad_input("depth image", error)
            health.unusable(f"bad depth image: {error}")
            return None, None
        health.used()
        # Metres, NaN outside the depth_min..depth_max range, so that every consumer (tracker, relations,
        # points, objects) sees the same readings.
        return depth_in_metres(depth, settings.depth_range), camera_info.k

    def bad_input(self, what: str, error: Exception) -> None:
        self.bad_images += 1
        self.logger.warning(f"ignored bad {what}{for_cameras([self])}: {error}", throttle_duration_sec=LOG_THROTTLE_S)

    def frame_failed(self, error: Exception) -> None:
        if not self.node.context.ok():  # the process is stopping: publishing failed because the context is gone
            return
        self.errors += 1
        self.frame_health.rejected(f"{type(error).__name__}: {error}", failed=True)
        self.logger.error(
            f"frame failed{for_cameras([self])}: {type(error).__name__}: {error}",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def wants_cloud(self, settings: NodeSettings) -> bool:
        """Whether its frames' results should carry the objects' point cloud (someone subscribes to it)."""
        return settings.use_depth and self.cloud_pub.get_subscription_count() > 0

    def publish(self, frame: Frame, target: Target, rgb: np.ndarray, outputs: FrameOutputs, use_depth: bool) -> bool:
        """Publish a frame's results in the camera's namespace, unless its instruction changed meanwhile (then
        counted as a stale result); returns whether they were published."""
        publications = [(self.segmentation_pub, outputs.result), (self.points_pub, outputs.points)]
        if use_depth:
            publications.append((self.objects_pub, outputs.objects))
        if outputs.cloud is not None:
            publications.append((self.cloud_pub, outputs.cloud))
        publications += self.on_demand.publications(
            frame.msg.header,
            rgb,
            outputs.result,
            outputs.objects if use_depth else None,
            outputs.prediction,
            outputs.estimates,
        )

        def publish() -> None:
            for publisher, message in publications:
                publisher.publish(message)

        published = self.slot.publish_if_current(target, publish)
        if not published:
            self.stale_results += 1
        self.frame_health.used()
        return published


def _input_problems(camera: Camera) -> dict[str, str]:
    """What the camera's inputs lack (input_watch), each new problem logged once; first the subscriptions
    follow their publishers' reliability. Called once a second by the diagnostics timer while active."""
    for subscription in camera.following():
        subscription.follow()

    def state(subscription, received: int) -> TopicState | None:
        if subscription is None:
            return None
        return TopicState(subscription.topic_name, camera.node.count_publishers(subscription.topic_name), received)

    problems = camera.watch.problems(
        time.monotonic(),
        state(camera.image_subscription, camera.arrivals.received),
        state(camera.depth_subscription, camera.depth_received),
        state(camera.info_subscription, camera.info_received),
    )
    if "no image" in problems and not camera.image_subscription.reliable:
        problems["no image"] += (
            f" (best-effort subscription: frames larger than about {BEST_EFFORT_MAX_FRAME_MB} MB, or any "
            f"frame from a publisher on Fast DDS's defaults, may never arrive: image_reliability:=auto)"
        )
    for text in camera.watch.new(problems):
        camera.logger.warning(text)
    return problems


def camera_diagnostics(camera: Camera, node: NodeStatus, settings: NodeSettings) -> DiagnosticArray:
    """A camera's DiagnosticArray (one status; also kept as its last_status, which the live view shows): its
    counters and the node's values; OK, WARN naming what is missing, or ERROR naming a fault of the node.
    Called once a second by the node's diagnostics timer (the executor's thread)."""
    summary = camera.stats.summary()
    target = camera.slot.target
    input_problems = _input_problems(camera) if node.active else {}
    values = {
        "rate_hz": f"{summary['rate']:.2f}",
        "latency_p50_ms": f"{summary['latency_p50_ms']:.1f}",
        "inference_p50_ms": f"{summary['inference_p50_ms']:.1f}",
        "dropped_frames": camera.slot.dropped,
        "images_received": camera.arrivals.received,
        "images_missing": camera.arrivals.missing,
        "camera_rate_hz": f"{camera.arrivals.rate_hz():.2f}",
        "bad_images": camera.bad_images,
        "bad_camera_info": camera.bad_camera_info,
        "bad_instructions": camera.bad_instructions,
        "stale_results": camera.stale_results,
        "errors": camera.errors,
        "batched_frames": camera.batched_frames,
    }
    values |= node.segment_values
    values |= node.values | {
        "instruction": echoed(target.instruction),
        "understood": target.parsed.describe() if target.parsed else "",
    }
    faults = list(node.faults)
    if not node.active:
        problems = [f"not active (lifecycle state {node.lifecycle_state})"]
        if node.startup_error:
            problems.append(f"configure failed: {node.startup_error}")
    else:
        problems = ([] if target.parsed else ["waiting for a valid instruction"]) + list(input_problems.values())
    frames = camera.frame_health.problem() if node.active else None
    if frames is not None:
        text, failed = frames  # failed: the node's own failure on every frame (ERROR), not bad input
        (faults if failed else problems).append(text)
    # input_watch says it already when no depth or camera info arrived at all
    if node.active and settings.use_depth and not {"no depth image", "no camera info"} & set(input_problems):
        depth = camera.depth_health.problem()
        problems += [depth] if depth else []
    level = DiagnosticStatus.ERROR if faults else DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
    problems = faults + problems
    array = messages.diagnostics(
        node.stamp,
        interface.diagnostics_status_name(node.node_name, camera.name),
        str(values.get("device", settings.device)),
        level,
        "; ".join(problems) or "segmenting",
        values,
    )
    camera.last_status = array.status[0]
    return array


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def for_cameras(cameras: list[Camera]) -> str:
    """' for head, wrist' naming the cameras a log line is about; '' for the single camera."""
    names = [camera.name for camera in cameras if camera.name]
    return f" for {', '.join(names)}" if names else ""


def echoed(text: str) -> str:
    """Received text as a diagnostics value: itself, or limits.shorten's quoted start and length when longer
    than limits.ECHO_LENGTH (a rejected 1 MB instruction must not make 1 MB diagnostics every second)."""
    return text if len(text) <= ECHO_LENGTH else shorten(text)
