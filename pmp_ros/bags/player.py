"""Plays recorded (or generated) serialised messages into the node's live topics and collects its answers.

rclpy publishes the bag's CDR bytes as they are (no deserialisation) and the node answers on its output
topics; answers are matched to inputs by header stamp. Two modes:
- timed: each message at its recorded time (scaled by `rate`), as a camera would send it. The node keeps
  only the newest frame, so frames it is too slow for get no result: they are counted as dropped.
- lockstep: one image, then wait for its result before the next, so every frame is processed once (accuracy
  on all frames, no drops), and the same bag gives the same figures on every run, loaded or not. Each image
  is sent once (reliable delivery; never again, so the node, whose tracker would see a resent frame twice,
  never processes a frame twice).
  Instructions and images travel on different topics, so an image could overtake the instruction sent
  before it: after a new instruction the player waits until the node's diagnostics name it (applied) before
  the next image; depth and camera info go out a moment (SETTLE_S) before their image.
  A frame not answered within `frame_timeout` counts as dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from pmp_ros.bags.messages import GT_TYPE, deserialize, header_stamp, stamp_key
from pmp_ros.bags.storage import BagMessage
from pmp_ros.language.limits import echoed
from pmp_ros.ros import interface, qos
from pmp_ros.ros.client import BackgroundNode
from pmp_ros_msgs.msg import LabelledPointArray, Object3DArray, SegmentationResult

DISCOVERY_TIMEOUT_S = 30.0
# Lockstep: depth / camera info go out this long before their image, so the node's executor has stored them when
# the image arrives. (Waiting for their acknowledgment instead costs up to Fast DDS's heartbeat period, 3 s, for
# a message below the 64 KB fragment size, e.g. every camera info.)
SETTLE_S = 0.05
# Discovery reports a node's publishers one by one: a node with objects shows that one within this of the others.
OBJECTS_DISCOVERY_S = 1.0

Key = tuple[int, int]


@dataclass
class FrameLog:
    """One published image: when it went out (monotonic s), the instruction the player had sent before it,
    and the node's answer (objects: only when the player collects them)."""

    index: int
    key: Key
    instruction: str | None
    published_at: float
    result: SegmentationResult | None = None
    points: LabelledPointArray | None = None
    objects: Object3DArray | None = None
    result_at: float | None = None
    overlay: Image | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.result_at is None else self.result_at - self.published_at


@dataclass
class Playback:
    """What a run produced: frames in publication order, ground truth by stamp (deserialised GroundTruth), the
    camera intrinsics (float64 [3,3]) by stamp of the camera infos played, the wall-clock span of the
    playback, images that repeated a stamp, and notes for the report."""

    frames: list[FrameLog] = field(default_factory=list)
    truths: dict[Key, object] = field(default_factory=dict)
    cameras: dict[Key, np.ndarray] = field(default_factory=dict)
    started_at: float = 0.0
    ended_at: float = 0.0
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)


class Player(BackgroundNode):
    """An rclpy node of its own context, spun in a background thread; use as a context manager.

    namespace: the node under test's namespace (its topics are relative). overlay: also collect the node's
    overlay images (the node draws them only while someone subscribes). objects: also collect the node's 3D
    objects, and in lockstep wait for them; None: if the node publishes them (known from wait_for_node).
    """

    def __init__(
        self,
        domain_id: int | None = None,
        namespace: str = "",
        compressed: bool = False,
        overlay: bool = False,
        objects: bool | None = False,
    ):
        super().__init__("pmp_bag_player", namespace, domain_id)
        self.overlay = overlay
        # The node's diagnostics status (its fully qualified name: the default node name in `namespace`): the
        # instruction it has applied, which lockstep waits for.
        self._status_name = interface.diagnostics_status_name(
            "/" + "/".join(part for part in (namespace.strip("/"), interface.NODE_NAME) if part)
        )
        self._applied: list[tuple[float, str]] = []  # (received at, instruction) of the node's diagnostics
        self.objects = objects
        self._cond = threading.Condition()
        self._frames: dict[Key, FrameLog] = {}
        self._pending_points: dict[Key, LabelledPointArray] = {}
        image_type, image_topic = (
            (CompressedImage, interface.IMAGE_TOPIC + "/compressed") if compressed else (Image, interface.IMAGE_TOPIC)
        )
        node = self.node
        self._publishers = {
            "image": node.create_publisher(image_type, image_topic, qos.profile(5)),
            "instruction": node.create_publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION),
            "depth": node.create_publisher(Image, interface.DEPTH_TOPIC, qos.profile(5)),
            "depth_info": node.create_publisher(CameraInfo, interface.DEPTH_INFO_TOPIC, qos.profile(1)),
        }
        node.create_subscription(SegmentationResult, interface.SEGMENTATION_TOPIC, self._on_result, qos.profile(50))
        node.create_subscription(LabelledPointArray, interface.POINTS_TOPIC, self._on_points, qos.profile(50))
        if objects is not False:
            node.create_subscription(Object3DArray, interface.OBJECTS_TOPIC, self._on_objects, qos.profile(50))
        if overlay:
            node.create_subscription(Image, interface.OVERLAY_TOPIC, self._on_overlay, qos.profile(10))
        node.create_subscription(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)

    # -- answers -------------------------------------------------------------------------------------
    def _on_result(self, msg: SegmentationResult) -> None:
        now = time.monotonic()
        with self._cond:
            frame = self._frames.get(stamp_key(msg.header.stamp))
            if frame is not None:  # the latest answer wins: after a resend, the older one is stale
                frame.result, frame.result_at = msg, now
                self._cond.notify_all()

    def _on_points(self, msg: LabelledPointArray) -> None:
        with self._cond:
            frame = self._frames.get(stamp_key(msg.header.stamp))
            if frame is not None:
                frame.points = msg
                self._cond.notify_all()

    def _on_objects(self, msg: Object3DArray) -> None:
        with self._cond:
            frame = self._frames.get(stamp_key(msg.header.stamp))
            if frame is not None:
                frame.objects = msg
                self._cond.notify_all()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        for status in msg.status:
            if status.name == self._status_name:
                values = {value.key: value.value for value in status.values}
                with self._cond:
                    self._applied.append((now, values.get("instruction", "")))
                    del self._applied[:-10]
                    self._cond.notify_all()

    def _on_overlay(self, msg: Image) -> None:
        with self._cond:
            frame = self._frames.get(stamp_key(msg.header.stamp))
            if frame is not None:
                frame.overlay = msg

    # -- playing -------------------------------------------------------------------------------------
    def wait_for_node(self, timeout: float = DISCOVERY_TIMEOUT_S) -> None:
        """Wait until the node under test subscribes to images and instructions and publishes results and
        points; then, with objects None, whether it publishes 3D objects (found within OBJECTS_DISCOVERY_S)
        decides if they are collected."""
        deadline = time.monotonic() + timeout
        checks = {
            f"a subscriber on {self._publishers['image'].topic_name}": lambda: (
                self._publishers["image"].get_subscription_count() > 0
            ),
            f"a subscriber on {self._publishers['instruction'].topic_name}": lambda: (
                self._publishers["instruction"].get_subscription_count() > 0
            ),
            "a publisher of segmentation results": lambda: self.node.count_publishers(interface.SEGMENTATION_TOPIC) > 0,
            "a publisher of labelled points": lambda: self.node.count_publishers(interface.POINTS_TOPIC) > 0,
        }
        if self.overlay:
            checks["a publisher of overlays"] = lambda: self.node.count_publishers(interface.OVERLAY_TOPIC) > 0
        for what, check in checks.items():
            while not check():
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no node found within {timeout:.0f} s: waited for {what} (is the node "
                        f"running in this ROS domain and namespace?)"
                    )
                time.sleep(0.02)
        if self.objects is None:
            grace = time.monotonic() + OBJECTS_DISCOVERY_S
            while self.node.count_publishers(interface.OBJECTS_TOPIC) == 0 and time.monotonic() < grace:
                time.sleep(0.02)
            self.objects = self.node.count_publishers(interface.OBJECTS_TOPIC) > 0

    def play(
        self,
        messages: Iterable[BagMessage],
        lockstep: bool = False,
        rate: float = 1.0,
        frame_timeout: float = 30.0,
        drain_timeout: float = 10.0,
        instruction_from_gt: bool = False,
        on_frame: Callable[[FrameLog], None] | None = None,
    ) -> Playback:
        """Publish `messages` (recorded order) and collect answers. instruction_from_gt: the stream has no
        instruction topic, so the instruction of each GroundTruth is published when it changes."""
        out = Playback(started_at=time.monotonic())
        instruction: str | None = None
        first_ns: int | None = None
        aux_sent = False
        sent_at: float | None = None  # when the instruction in force was published, until the node applied it
        for message in messages:
            if first_ns is None:
                first_ns = message.time_ns
            if not lockstep:
                delay = out.started_at + (message.time_ns - first_ns) / 1e9 / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if message.role == "gt":
                truth = deserialize(message.data, GT_TYPE)
                out.truths[stamp_key(truth.header.stamp)] = truth
                if instruction_from_gt and truth.instruction != instruction:
                    instruction = truth.instruction
                    self._publishers["instruction"].publish(String(data=instruction))
                    sent_at = time.monotonic()
            elif message.role == "image":
                if lockstep:
                    if sent_at is not None:
                        self._await_instruction(instruction, sent_at, frame_timeout, out.notes)
                        sent_at = None
                    if aux_sent:
                        time.sleep(SETTLE_S)
                frame = self._send_image(message, len(out.frames), instruction)
                if frame.index < len(out.frames):
                    out.duplicates += 1
                else:
                    out.frames.append(frame)
                if lockstep:
                    self._await(frame, instruction, frame_timeout)
                if on_frame:
                    on_frame(frame)
                aux_sent = False
            else:
                if message.role == "instruction":
                    text = deserialize(message.data, message.msgtype).data
                    if lockstep and text == instruction:
                        # The one in force again: published, it would only make the node re-apply it while the
                        # next image may overtake it (a result computed under the replaced one is not published).
                        continue
                    instruction, sent_at = text, time.monotonic()
                else:
                    if message.role == "depth_info":
                        k = np.reshape(deserialize(message.data, message.msgtype).k, (3, 3))
                        out.cameras[header_stamp(message.data)] = k
                    aux_sent = True
                self._publishers[message.role].publish(message.data)
        self._drain(out.frames, 0.0 if lockstep else drain_timeout)  # lockstep already waited per frame
        if out.duplicates:
            out.notes.append(
                f"{out.duplicates} image(s) repeated an earlier header stamp: each stamp counts as one "
                f"frame, answered by its latest image"
            )
        out.ended_at = time.monotonic()
        return out

    def _send_image(self, message: BagMessage, index: int, instruction: str | None) -> FrameLog:
        key = header_stamp(message.data)
        with self._cond:
            frame = self._frames.get(key)
            if frame is None:
                frame = FrameLog(index, key, instruction, time.monotonic())
                self._frames[key] = frame
            else:  # two images with one stamp: the later one is what the node answers for
                frame.published_at = time.monotonic()
        self._publishers["image"].publish(message.data)
        return frame

    def _await_instruction(self, instruction: str | None, sent_at: float, timeout: float, notes: list[str]) -> None:
        """Lockstep: wait until diagnostics the node published after `sent_at` name `instruction` (the node
        publishes them once a second), so the next image is segmented for it; a note if they do not."""
        if instruction is None:
            return
        with self._cond:
            if self._cond.wait_for(
                lambda: any(at > sent_at and text == echoed(instruction) for at, text in self._applied), timeout
            ):
                return
        notes.append(
            f"the node's diagnostics ({self._status_name!r}) did not show the instruction {instruction!r} applied "
            f"within {timeout:g} s: the frames after it may have been segmented for the previous one"
        )

    def _await(self, frame: FrameLog, instruction: str | None, timeout: float) -> None:
        """Lockstep: wait for the frame's result computed with the current instruction (and its points and,
        when collected, objects). The image is never sent again: reliable delivery brings it to the node, which
        answers every frame it takes while an instruction is in force, so a second copy would only be segmented
        twice (its tracker seeing the frame twice)."""
        deadline = time.monotonic() + timeout

        def answered() -> bool:
            parts = [frame.result, frame.points, frame.objects] if self.objects else [frame.result, frame.points]
            return all(p is not None for p in parts) and (
                instruction is None or all(p.instruction == instruction for p in parts)
            )

        with self._cond:
            self._cond.wait_for(answered, max(deadline - time.monotonic(), 0.0))
        if not answered():  # a wrong-instruction or half answer counts as none
            frame.result = frame.points = frame.objects = frame.result_at = None

    def _drain(self, frames: list[FrameLog], timeout: float) -> None:
        """Wait for answers still in flight: until every frame has one, or none came for a while (frames the
        node dropped never get one)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while time.monotonic() < deadline:
                missing = sum(
                    f.result is None or f.points is None or (self.objects and f.objects is None) for f in frames
                )
                if not missing or not self._cond.wait(min(2.0, deadline - time.monotonic())):
                    break
