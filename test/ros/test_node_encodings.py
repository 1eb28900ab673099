"""Every image encoding the README lists, over real DDS into the node: one scene sent as rgb8, bgr8, rgba8,
bgra8, mono8, mono16 (both byte orders), with padded rows, and compressed as JPEG and PNG, is segmented with
the same instances as rgb8.

Two node processes (raw and compressed transport, one namespace each: a node subscribes to one of them),
started together, serve the whole matrix; frames go one at a time, each answered before the next. The
tiny random-weight model is deterministic on one CPU thread, so equal pixels give equal results.
"""

from contextlib import ExitStack

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image, image_to_array
from pmp_ros.ros.node import READY_TEXT
from pmp_ros_msgs.msg import SegmentationResult

from message_samples import padded_image_message
from ros_harness import NodeProcess, RosTestClient, node_argv, wait_until

WIDTH, HEIGHT, SCENE_SEED = 128, 96, 2
INSTRUCTION = "pick up the red star, the green ring and the blue cross"
INSTRUCTION_QOS = qos.INSTRUCTION
# One made-up context class leaves the prompts in charge of a random model, so the scene has instances.
# Without tracking, each frame's result depends on that frame alone (and the random model's instances score
# below the tracker's new_track_score).
NODE_PARAMS = {
    "device": "cpu",
    "cpu_threads": "1",
    "score_threshold": "0.0",
    "tracking": "false",
    "context_vocabulary": "['table']",
    "inference_width": str(WIDTH),
    "inference_height": str(HEIGHT),
    "image_reliability": "reliable",
}
NAMESPACES = {"raw": "/raw", "compressed": "/compressed"}
STARTUP_TIMEOUT_S = 180.0
RESULT_TIMEOUT_S = 60.0

# Lossless encodings carry the scene's exact pixels: their results must equal rgb8's. Grey and JPEG change
# the pixels, and a random-weight model's instances on other pixels are unrelated to rgb8's, so they are
# compared with rgb8 of the pixels they carry: the grey image (mono16 keeps its 8 high bits) and the JPEG
# as decoded. That the node decodes them right is then checked exactly too.
SAME_AS = {
    "bgr8": "rgb8",
    "rgba8": "rgb8",
    "bgra8": "rgb8",
    "rgb8 padded step": "rgb8",
    "bgr8 padded step": "rgb8",
    "png": "rgb8",
    "mono8": "grey as rgb8",
    "mono16": "grey as rgb8",
    "mono16 big-endian": "grey as rgb8",
    "jpeg": "decoded jpeg as rgb8",
}


def _compressed(rgb, extension):
    ok, data = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(format=extension.lstrip("."), data=data.tobytes())


def encoded_frames(rgb):
    """name -> (transport, message): the scene in every encoding, and the rgb8 references."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    jpeg = _compressed(rgb, ".jpg")
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(jpeg.data), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raw = {
        "rgb8": array_to_image(rgb, "rgb8"),
        "bgr8": array_to_image(bgr, "bgr8"),
        "rgba8": array_to_image(np.concatenate([rgb, alpha], 2), "rgba8"),
        "bgra8": array_to_image(np.concatenate([bgr, alpha], 2), "bgra8"),
        "rgb8 padded step": padded_image_message(rgb, "rgb8", 8),
        "bgr8 padded step": padded_image_message(bgr, "bgr8", 8),
        "mono8": array_to_image(grey, "mono8"),
        "mono16": array_to_image(grey.astype(np.uint16) * 257, "mono16"),
        "mono16 big-endian": padded_image_message(grey.astype(np.uint16) * 257, "mono16", 0, bigendian=True),
        "grey as rgb8": array_to_image(np.repeat(grey[..., None], 3, axis=2), "rgb8"),
        "decoded jpeg as rgb8": array_to_image(decoded, "rgb8"),
    }
    return {
        **{name: ("raw", msg) for name, msg in raw.items()},
        "jpeg": ("compressed", jpeg),
        "png": ("compressed", _compressed(rgb, ".png")),
    }


class NodeUnderTest:
    """One node process in its namespace, with the client's publishers and subscriptions for it."""

    def __init__(self, client, transport, model_file, stack):
        self.namespace = NAMESPACES[transport]
        params = {**NODE_PARAMS, "model_path": str(model_file), "image_transport": transport}
        argv = node_argv(params, "-r", f"__ns:={self.namespace}")
        self.proc = stack.enter_context(NodeProcess(argv, name=f"{transport}_node"))
        self.client = client
        self.image_type, image_topic = (
            (CompressedImage, interface.IMAGE_TOPIC + "/compressed")
            if transport == "compressed"
            else (Image, interface.IMAGE_TOPIC)
        )
        self.image_topic = f"{self.namespace}/{image_topic}"
        self.results = client.subscribe(SegmentationResult, f"{self.namespace}/{interface.SEGMENTATION_TOPIC}")
        self.status_name = interface.diagnostics_status_name(f"{self.namespace}/{interface.NODE_NAME}")

    def connect(self, first_frame):
        """Wait for the node, send the instruction, and the first frame until a result carries the
        instruction (frames that reach the node before it get none)."""
        self.proc.wait_for_output(READY_TEXT, STARTUP_TIMEOUT_S)
        self.image_pub = self.client.publisher(self.image_type, self.image_topic)
        instruction_pub = self.client.publisher(
            String, f"{self.namespace}/{interface.INSTRUCTION_TOPIC}", INSTRUCTION_QOS
        )
        instruction_pub.publish(String(data=INSTRUCTION))

        def answered():
            if any(r.instruction == INSTRUCTION for r in self.results):
                return True
            self.image_pub.publish(first_frame)
            return False

        wait_until(answered, RESULT_TIMEOUT_S, interval=0.3, what=f"a first result from {self.namespace}")

    def answer(self, msg, stamp):
        """The node's result for msg sent with this stamp; None when the node counted it as an error or a
        bad image instead (diagnostics), with the reason in its log."""
        msg.header.stamp = stamp
        msg.header.frame_id = "camera_optical"
        counted_before = self.counted_problems()
        self.image_pub.publish(msg)

        def outcome():
            assert self.proc.returncode is None, self.proc.output()
            for result in list(self.results):
                if result.header.stamp == stamp:
                    return ("result", result)
            return self.counted_problems() > counted_before and ("problem", None)

        return wait_until(outcome, RESULT_TIMEOUT_S, what=f"the answer of {self.namespace}")[1]

    def statuses(self):
        """This node's diagnostics statuses so far (every node publishes on the one /diagnostics)."""
        arrays = list(self.client.received.get(interface.DIAGNOSTICS_TOPIC, []))
        return [status for array in arrays for status in array.status if status.name == self.status_name]

    def diagnostics(self):
        """The values of this node's latest diagnostics status ({} before the first)."""
        statuses = self.statuses()
        return {v.key: v.value for v in statuses[-1].values} if statuses else {}

    def counted_problems(self):
        values = self.diagnostics()
        return int(values.get("errors", 0)) + int(values.get("bad_images", 0))

    def stop(self):
        return self.proc.stop(), self.proc.output()


@pytest.fixture(scope="module")
def answers(model_file):
    """name -> SegmentationResult (None: no result), and each node's final diagnostics and log."""
    rgb = TabletopWorld(WIDTH, HEIGHT, WorldConfig()).render(SCENE_SEED).rgb
    frames = encoded_frames(rgb)
    client = RosTestClient("pmp_encoding_test")
    client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    try:
        with ExitStack() as stack:
            nodes = {transport: NodeUnderTest(client, transport, model_file, stack) for transport in NAMESPACES}
            nodes["raw"].connect(frames["rgb8"][1])
            nodes["compressed"].connect(frames["png"][1])
            results = {
                name: nodes[transport].answer(msg, Time(sec=100, nanosec=i))
                for i, (name, (transport, msg)) in enumerate(frames.items())
            }
            # A status published after the last answer holds every count of the matrix.
            for node in nodes.values():
                seen = len(node.statuses())
                wait_until(lambda: len(node.statuses()) > seen, 30, what=f"diagnostics of {node.namespace}")
            diagnostics = {transport: node.diagnostics() for transport, node in nodes.items()}
            stopped = {transport: node.stop() for transport, node in nodes.items()}
    finally:
        client.close()
    return results, diagnostics, stopped


def _instances(result):
    return [
        (i.id, i.label, i.prompt_index, i.area, i.roi.x_offset, i.roi.y_offset, i.roi.width, i.roi.height)
        for i in result.instances
    ]


def test_reference_has_instances(answers):
    results, _, _ = answers
    assert results["rgb8"] is not None and results["rgb8"].instances  # comparisons are not between empties
    assert results["rgb8"].instruction == INSTRUCTION


@pytest.mark.parametrize("encoding, reference", SAME_AS.items(), ids=list(SAME_AS))
def test_every_encoding_is_segmented_like_rgb8(answers, encoding, reference):
    results, _, stopped = answers
    result, expected = results[encoding], results[reference]
    transport = "compressed" if encoding in ("jpeg", "png") else "raw"
    assert result is not None, f"{encoding}: no result, counted as a problem:\n{stopped[transport][1][-3000:]}"
    assert expected is not None and expected.instances
    assert (result.header.frame_id, result.instruction) == ("camera_optical", INSTRUCTION)
    assert _instances(result) == _instances(expected)
    assert [i.score for i in result.instances] == pytest.approx([i.score for i in expected.instances], abs=1e-6)
    np.testing.assert_array_equal(image_to_array(result.label_image), image_to_array(expected.label_image))


def test_no_error_or_bad_image_counted_and_clean_shutdown(answers):
    _, diagnostics, stopped = answers
    for transport, values in diagnostics.items():
        assert (values["errors"], values["bad_images"]) == ("0", "0"), (transport, values)
        code, output = stopped[transport]
        assert code == 0 and "Traceback" not in output and "frame failed" not in output, output
