"""Commands that drive a running pmp_segmenter node from a shell, with no ROS install (issue 25):

    pmp-instruct "pick up the red mug"           publish the instruction (latched), wait until the node applies it
    pmp-segment "red mug" --image photo.png      one segment-service answer, as JSON and an overlay PNG
    pmp-watch                                    print the node's results and diagnostics until Ctrl-C

Each takes --namespace (the node's, e.g. /robot from `-r __ns:=/robot`), --node-name (a node renamed with
`-r __node:=...`; it names the node's diagnostics) and --camera (one of the node's `cameras`); ROS_DOMAIN_ID
picks the DDS domain, as for any ROS program. They publish and call with the middleware's default QoS except
the instruction, which is latched (reliable, transient local, depth 1: qos.INSTRUCTION) so a node started
while pmp-instruct waits still gets it.

`python -m pmp_ros.ros.commands instruct|segment|watch ...` runs the same as the console scripts.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.duration import Duration
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.language.limits import echoed
from pmp_ros.ros import interface, qos
from pmp_ros.ros.client import BackgroundNode, wait_until
from pmp_ros.ros.environment import configure_dds_environment
from pmp_ros.ros.image_conversion import ImageConversionError, array_to_image, image_to_array, image_to_rgb8
from pmp_ros.viz.overlay import Annotation, draw_overlay
from pmp_ros_msgs.msg import SegmentationResult
from pmp_ros_msgs.srv import Segment

# The node publishes its diagnostics once a second; a few periods let a slow (loaded) machine catch up.
DEFAULT_TIMEOUT_S = 30.0
# How often pmp-segment republishes its --image while the request waits: the service answers with the first
# frame that arrives after the request, and a frame published before the node's subscription matched is lost.
IMAGE_REPUBLISH_S = 0.5
LEVELS = {DiagnosticStatus.OK: "OK", DiagnosticStatus.WARN: "WARN", DiagnosticStatus.ERROR: "ERROR", 3: "STALE"}
WATCHED_VALUES = ("instruction", "understood", "rate_hz", "images_received", "dropped_frames", "errors")


class CommandError(Exception):
    """What went wrong, said in one line; the command exits with code 1."""


def node_namespace(text: str) -> str:
    """'/robot', 'robot/' or '' -> the absolute namespace '/robot' ('/' for none)."""
    return "/" + text.strip().strip("/")


def node_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that find the node: its namespace, its name, a camera of its `cameras`."""
    parser.add_argument(
        "--namespace", "-n", default="", help="the node's namespace (-r __ns:=/NS when it was started); default: none"
    )
    parser.add_argument(
        "--node-name",
        default=interface.NODE_NAME,
        help=f"the node's name (-r __node:=NAME), which names its diagnostics; default: {interface.NODE_NAME}",
    )
    parser.add_argument(
        "--camera", default="", help="one of the node's cameras (its `cameras` parameter); default: the first"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for the node (default {DEFAULT_TIMEOUT_S:g})",
    )


class NodeLink:
    """A connection to one pmp_segmenter node: a background rclpy node in the node's namespace (so the node's
    relative topic and service names resolve the same) and the node's diagnostics status name."""

    def __init__(self, tool: str, args: argparse.Namespace) -> None:
        self.namespace = node_namespace(args.namespace)
        self.camera = args.camera.strip("/")
        if self.camera and not re.fullmatch(interface.CAMERA_NAME_PATTERN, self.camera):
            raise CommandError(f"--camera {args.camera!r} is not a camera name (e.g. head or arm/wrist)")
        fully_qualified = self.namespace.rstrip("/") + "/" + args.node_name
        self.status_name = interface.diagnostics_status_name(fully_qualified, self.camera)
        self.timeout = args.timeout
        configure_dds_environment()
        self.background = BackgroundNode(tool, namespace=self.namespace, threads=2)
        self.node = self.background.node

    def topic(self, name: str) -> str:
        """The resolved name of one of the node's topics for the chosen camera."""
        return self.node.resolve_topic_name(interface.camera_topic(self.camera, name))

    def close(self) -> None:
        self.background.close()

    def subscribe_diagnostics(self, on_status: Callable[[DiagnosticStatus], None]) -> None:
        """on_status(status) for each of the node's (this camera's) statuses on /diagnostics."""

        def on_array(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name == self.status_name:
                    on_status(status)

        self.node.create_subscription(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, on_array, 10)

    def wait(self, predicate: Callable[[], object], what: str, timeout: float | None = None) -> object:
        try:
            return wait_until(predicate, self.timeout if timeout is None else timeout, what, interval=0.05)
        except TimeoutError as error:
            raise CommandError(str(error)) from None


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    return {value.key: value.value for value in status.values}


def run(tool: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """body(args) with a CommandError or a missing node said in one line (exit code 1), Ctrl-C exit code 130."""
    try:
        return body(args)
    except CommandError as error:
        print(f"{tool}: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130


# -- pmp-instruct ---------------------------------------------------------------------------------------------
def instruct_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmp-instruct",
        description="Publish an instruction to the pmp_segmenter node as a planner would (latched: a node started "
        "while this waits gets it too) and wait until the node's diagnostics show it applied. An empty text "
        "clears the target.",
    )
    parser.add_argument("text", help='the instruction, e.g. "pick up the red mug" (docs/instructions.md)')
    node_arguments(parser)
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="exit once the node has received the message (acknowledged), without waiting for its diagnostics",
    )
    return parser


def _instruct(args: argparse.Namespace) -> int:
    link = NodeLink("pmp_instruct", args)
    try:
        statuses: list[DiagnosticStatus] = []
        link.subscribe_diagnostics(statuses.append)
        publisher = link.node.create_publisher(String, link.topic(interface.INSTRUCTION_TOPIC), qos.INSTRUCTION)
        publisher.publish(String(data=args.text))  # latched: a subscription that matches later gets it too
        topic = publisher.topic_name
        link.wait(lambda: publisher.get_subscription_count() > 0, f"a node subscribed to {topic}")
        # Reliable delivery to every matched subscription (rclpy: all acknowledged by their readers).
        if not publisher.wait_for_all_acked(Duration(seconds=args.timeout)):
            raise CommandError(f"the instruction on {topic} was not acknowledged within {args.timeout:g} s")
        if args.no_wait:
            print(f"delivered on {topic}", flush=True)
            return 0
        # Applied: the node's next diagnostics name it (the node publishes them once a second).
        shown = echoed(args.text)  # as the node's diagnostics show it (a long text shortened)
        applied = link.wait(
            lambda: next((s for s in reversed(statuses) if status_values(s).get("instruction") == shown), None),
            f"{link.status_name!r} on {interface.DIAGNOSTICS_TOPIC} to name the instruction "
            f"(is --namespace/--node-name/--camera the node's?)",
        )
        understood = status_values(applied).get("understood", "")
        if args.text.strip() and not understood:
            raise CommandError(f"the node rejected the instruction: {applied.message} (its log says why)")
        print(f"applied on {topic}: {understood or 'target cleared'}", flush=True)
        return 0
    finally:
        link.close()


def instruct_main(argv: list[str] | None = None) -> int:
    """Console entry pmp-instruct."""
    return run("pmp-instruct", _instruct, instruct_parser().parse_args(argv))


# -- pmp-segment ----------------------------------------------------------------------------------------------
def segment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmp-segment",
        description="Ask the pmp_segmenter node's segment service for one result: with --image, on that picture "
        "(published on the node's image topic; for a node with no camera publishing), else on the camera's next "
        "frame. Writes the result as JSON and the overlay (outlines, labels, labelled points) as a PNG.",
    )
    parser.add_argument("instruction", help='what to segment, e.g. "red mug" (docs/instructions.md)')
    parser.add_argument("--image", type=Path, help="a picture file (PNG, JPEG, ...) to segment")
    parser.add_argument(
        "--output", "-o", type=Path, default=Path("segment.json"), help="the JSON (default segment.json)"
    )
    parser.add_argument(
        "--overlay", type=Path, help="the overlay PNG (default: the JSON's name with .png); needs the frame's picture"
    )
    node_arguments(parser)
    return parser


def read_picture(path: Path) -> np.ndarray:
    """A picture file -> uint8 [H,W,3] RGB (grey and RGBA files too)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CommandError(f"cannot read a picture from {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def result_record(response: Segment.Response) -> dict:
    """A segment answer as plain data (what the JSON holds): the frame's stamp, the instruction and how it was
    understood and resolved, and per instance its label, score, box, area, labelled point and 3D position."""
    result = response.result
    points = {point.instance_id: point for point in response.points.points}
    objects = {item.instance_id: item for item in response.objects.objects} if response.objects.objects else {}
    instances = []
    for instance in result.instances:
        roi = instance.roi
        record = {
            "id": int(instance.id),
            "label": instance.label,
            "prompt_index": int(instance.prompt_index),
            "score": round(float(instance.score), 4),
            "box": {"x": roi.x_offset, "y": roi.y_offset, "width": roi.width, "height": roi.height},
            "area": int(instance.area),
        }
        point = points.get(instance.id)
        if point is not None:
            record["point"] = {"u": int(point.u), "v": int(point.v)}
            if point.position_valid:
                record["position_m"] = [
                    round(point.position.x, 4),
                    round(point.position.y, 4),
                    round(point.position.z, 4),
                ]
        if instance.id in objects:
            record["has_object_3d"] = True
        instances.append(record)
    stamp = result.header.stamp
    return {
        "stamp": {"sec": stamp.sec, "nanosec": stamp.nanosec},
        "frame_id": result.header.frame_id,
        "instruction": result.instruction,
        "prompts": list(result.prompts),
        "resolution": result.resolution,
        "size": {"width": result.label_image.width, "height": result.label_image.height},
        "instances": instances,
    }


def overlay_picture(rgb: np.ndarray, response: Segment.Response) -> np.ndarray:
    """uint8 [H,W,3] frame + a segment answer -> the overlay picture (viz.overlay.draw_overlay, with the banner)."""
    result = response.result
    label_image = np.asarray(image_to_array(result.label_image), dtype=np.uint16)
    if label_image.shape != rgb.shape[:2]:
        raise CommandError(
            f"the result's label image is {label_image.shape[1]}x{label_image.shape[0]}, the picture "
            f"{rgb.shape[1]}x{rgb.shape[0]}"
        )
    points = {point.instance_id: (int(point.u), int(point.v)) for point in response.points.points}
    annotations = [
        Annotation(i.id, i.label, float(i.score), int(i.track_id), points.get(i.id)) for i in result.instances
    ]
    return draw_overlay(rgb, label_image, annotations, result.instruction, result.resolution)


def _segment(args: argparse.Namespace) -> int:
    picture = read_picture(args.image) if args.image else None
    link = NodeLink("pmp_segment", args)
    try:
        client = link.node.create_client(Segment, link.node.resolve_service_name(interface.SEGMENT_SERVICE))
        link.wait(client.service_is_ready, f"the service {client.srv_name}")
        frames: dict[tuple[int, int], np.ndarray] = {}  # stamp -> picture, of the frames the answer may be on
        image_topic = link.topic(interface.IMAGE_TOPIC)
        if picture is None:

            def on_frame(msg: Image) -> None:  # the camera's frames, to draw the overlay on the answered one
                try:
                    frames[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = image_to_rgb8(msg)
                except ImageConversionError:
                    return
                while len(frames) > 30:
                    frames.pop(next(iter(frames)))

            # Best effort matches a camera of either reliability.
            link.node.create_subscription(Image, image_topic, on_frame, qos_profile_sensor_data)
            publisher = None
        else:
            publisher = link.node.create_publisher(Image, image_topic, 10)
            link.wait(lambda: publisher.get_subscription_count() > 0, f"the node subscribed to {image_topic}")
        # The node's frame wait (request timeout) gets ours; its model wait is the node's own parameter.
        future = client.call_async(Segment.Request(instruction=args.instruction, timeout=float(args.timeout)))
        # The node answers every request (its frame and model waits end in an error answer); only a node that
        # went away leaves it unanswered.
        while not future.done():
            if publisher is not None:
                stamp = link.node.get_clock().now().to_msg()
                frames[(stamp.sec, stamp.nanosec)] = picture
                message = array_to_image(picture, "rgb8")
                message.header.stamp, message.header.frame_id = stamp, "pmp_segment"
                publisher.publish(message)
            if not client.service_is_ready():
                raise CommandError(f"{client.srv_name} went away before it answered")
            time.sleep(IMAGE_REPUBLISH_S if publisher is not None else 0.05)
        response = future.result()
        if not response.success:
            raise CommandError(f"{client.srv_name}: {response.error}")
        record = result_record(response)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2) + "\n")
        overlay_path = args.overlay or args.output.with_suffix(".png")
        stamp = response.result.header.stamp
        frame = frames.get((stamp.sec, stamp.nanosec))
        if frame is None:
            # With --image another publisher's frame came first; without it the frame was not received here.
            print("pmp-segment: the answered frame is not one this command saw: no overlay written", file=sys.stderr)
        else:
            overlay_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(overlay_path), cv2.cvtColor(overlay_picture(frame, response), cv2.COLOR_RGB2BGR))
        found = ", ".join(f"{i['label']} {i['score']:.2f}" for i in record["instances"]) or "nothing"
        print(
            f"{record['resolution'] or 'answered'}: {found} -> {args.output}"
            + (f", {overlay_path}" if frame is not None else "")
        )
        return 0
    finally:
        link.close()


def segment_main(argv: list[str] | None = None) -> int:
    """Console entry pmp-segment."""
    return run("pmp-segment", _segment, segment_parser().parse_args(argv))


# -- pmp-watch ------------------------------------------------------------------------------------------------
def watch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmp-watch",
        description="Print the pmp_segmenter node's results (one line per frame) and its diagnostics (one line a "
        "second) as they come, until Ctrl-C.",
    )
    node_arguments(parser)
    parser.add_argument("--no-diagnostics", action="store_true", help="results only")
    parser.add_argument("--count", type=int, default=0, help="exit after this many results (0: until Ctrl-C)")
    return parser


def result_line(result: SegmentationResult) -> str:
    """One line per result: the frame's stamp, the instruction, how it was resolved, the instances."""
    stamp = result.header.stamp
    instances = "; ".join(
        f"{i.label} {i.score:.2f}"
        + (f" #{i.track_id}" if i.track_id else "")
        + f" [{i.roi.x_offset},{i.roi.y_offset} {i.roi.width}x{i.roi.height}]"
        for i in result.instances
    )
    return f"result {stamp.sec}.{stamp.nanosec:09d} {result.instruction!r}: {result.resolution or '-'}" + (
        f" | {instances}" if instances else ""
    )


def diagnostics_line(status: DiagnosticStatus) -> str:
    values = status_values(status)
    shown = " ".join(
        f"{key}={values[key]!r}" if key in ("instruction", "understood") else f"{key}={values[key]}"
        for key in WATCHED_VALUES
        if key in values
    )
    return f"diagnostics {LEVELS.get(status.level, status.level)} {status.message} | {shown}"


def _watch(args: argparse.Namespace) -> int:
    link = NodeLink("pmp_watch", args)
    lines: queue.Queue[tuple[str, str]] = queue.Queue()
    # Ctrl-C or SIGTERM ends the watch: our own handlers, installed after rclpy's, because rclpy's sometimes
    # left the context up and raised nothing (test_watch_ends_cleanly_on_ctrl_c failed once so in CI).
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        topic = link.topic(interface.SEGMENTATION_TOPIC)
        link.node.create_subscription(
            SegmentationResult, topic, lambda msg: lines.put(("result", result_line(msg))), 10
        )
        if not args.no_diagnostics:
            link.subscribe_diagnostics(lambda status: lines.put(("diagnostics", diagnostics_line(status))))
        print(f"watching {topic}" + ("" if args.no_diagnostics else f" and {link.status_name!r}"), flush=True)
        results = 0
        while link.background.context.ok() and not stop.is_set():
            try:
                kind, line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            print(line, flush=True)
            results += kind == "result"
            if args.count and results >= args.count:
                break
        return 0
    except KeyboardInterrupt:  # Ctrl-C is how this command ends
        return 0
    finally:
        link.close()


def watch_main(argv: list[str] | None = None) -> int:
    """Console entry pmp-watch."""
    return run("pmp-watch", _watch, watch_parser().parse_args(argv))


COMMANDS = {"instruct": instruct_main, "segment": segment_main, "watch": watch_main}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m pmp_ros.ros.commands {{{','.join(COMMANDS)}}} ...")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
