"""The node's instruction topics: text and structured instructions, shared by every camera or a camera's own,
checked, parsed and set as the cameras' targets (pipeline.FrameSlot.set_target). Runs on the executor's
thread; a rejected instruction clears the target and is counted and logged, never the node's end."""

from __future__ import annotations

from collections.abc import Callable

from std_msgs.msg import String

from pmp_ros.language.limits import shorten
from pmp_ros.language.parse import InstructionParseError, ParsedInstruction, parse_instruction
from pmp_ros.ros import interface, matching, messages
from pmp_ros.ros.camera_stream import LOG_THROTTLE_S, Camera, for_cameras
from pmp_ros.ros.node_settings import NodeSettings
from pmp_ros.ros.pipeline import instruction_problem
from pmp_ros_msgs.msg import Instruction


class InstructionIntake:
    """The instruction subscriptions of a node's cameras. settings: the node's settings in force (read at
    each instruction: max_instruction_length may change)."""

    def __init__(self, node, cameras: list[Camera], settings: Callable[[], NodeSettings]) -> None:
        self.node, self.cameras, self.settings = node, cameras, settings
        # Instruction publishers no subscription can match (reliability; the durability mismatch of a volatile
        # publisher with the transient-local subscription is expected: the volatile one takes it).
        self._qos_report = matching.IncompatibleQosReport(
            node.get_logger(),
            {
                "RELIABILITY": "publish instructions reliable (ros2 topic pub --qos-reliability reliable)",
                "DURABILITY": None,
            },
        )

    def subscribe(self) -> list:
        """Every instruction subscription: the shared topics, which apply to every camera without instructions
        of its own, and each named camera's own."""
        subscriptions = self._subscriptions(None)
        for camera in self.cameras:
            if camera.name:  # the single camera's own instruction topics are the shared ones
                subscriptions += self._subscriptions(camera)
        return subscriptions

    def _subscriptions(self, camera: Camera | None) -> list:
        """Subscriptions to a camera's own instruction topics (camera None: the shared ones), each twice
        (matching.instruction_subscriptions); one gate for the text and the structured topic, so the latest of
        either is in force."""
        namespace = camera.name if camera else ""
        gate = matching.InstructionGate()
        return [
            *matching.instruction_subscriptions(
                self.node,
                String,
                interface.camera_topic(namespace, interface.INSTRUCTION_TOPIC),
                lambda msg: self.on_text(camera, msg),
                self._qos_report,
                gate,
            ),
            *matching.instruction_subscriptions(
                self.node,
                Instruction,
                interface.camera_topic(namespace, interface.STRUCTURED_INSTRUCTION_TOPIC),
                lambda msg: self.on_structured(camera, msg),
                self._qos_report,
                gate,
            ),
        ]

    def on_text(self, camera: Camera | None, msg: String) -> None:
        """An instruction on a camera's own topic (camera None: the shared topic)."""
        text = msg.data
        cameras = self._instructed_cameras(camera)
        if not text.strip():
            self._clear(cameras, text)
            return
        max_length = self.settings().max_instruction_length
        problem = instruction_problem(text, max_length)
        if problem is None:
            try:
                self._set(cameras, text, parse_instruction(text, max_length=max_length))
                return
            except InstructionParseError as error:
                problem = str(error)
            except Exception as error:  # a parser bug must not take the node down with it
                problem = f"instruction parser failed: {type(error).__name__}: {error}"
        self._reject(cameras, shorten(text), text, problem)

    def on_structured(self, camera: Camera | None, msg: Instruction) -> None:
        cameras = self._instructed_cameras(camera)
        if not (msg.targets or msg.excluded or msg.everything):
            self._clear(cameras, "")
            return
        try:
            parsed = messages.parsed_from_instruction(msg, self.settings().max_instruction_length)
        except InstructionParseError as error:
            self._reject(cameras, "structured instruction", "", str(error))
            return
        self._set(cameras, "", parsed)

    def _instructed_cameras(self, camera: Camera | None) -> list[Camera]:
        """The cameras an instruction applies to: the one whose own topic it came on (which then follows
        only its own), or, from the shared topic, those without instructions of their own."""
        if camera is None:
            return [c for c in self.cameras if not c.own_instruction]
        camera.own_instruction = True
        return [camera]

    def _set(self, cameras: list[Camera], text: str, parsed: ParsedInstruction) -> None:
        for camera in cameras:
            camera.slot.set_target(text, parsed)
        source = shorten(text) if text else "structured instruction"
        self.node.get_logger().info(f"instruction {source}{for_cameras(cameras)} -> {parsed.describe()}")

    def _clear(self, cameras: list[Camera], text: str) -> None:
        for camera in cameras:
            camera.slot.set_target(text, None)
        self.node.get_logger().info(
            f"empty instruction{for_cameras(cameras)}: target cleared, publishing nothing until the next one"
        )

    def _reject(self, cameras: list[Camera], what: str, text: str, problem: str) -> None:
        for camera in cameras:
            camera.slot.set_target(text, None)
            camera.bad_instructions += 1
        self.node.get_logger().warning(
            f"rejected instruction {what}{for_cameras(cameras)}: {problem}; target cleared",
            throttle_duration_sec=LOG_THROTTLE_S,
        )
