"""The node with several cameras (the `cameras` parameter), in its own process over real DDS: each camera's
results in its own namespace with its own frame's header, a camera's own instruction overriding the shared one
for that camera only, and both cameras served while both stream.

The cameras see different world renders at different sizes, so a result's label image tells which camera's
frame it was computed on. A tiny random-weight model (test/helpers/model_fixtures.py), without tracking, so
that each result depends on its frame alone.
"""

import time

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.data.world import TabletopWorld
from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image, image_to_array
from pmp_ros_msgs.msg import SegmentationResult
from pmp_ros_msgs.srv import Segment

from ros_harness import wait_until

STARTUP_TIMEOUT_S = 180.0
SHARED = "pick up the red star"
CAMERAS = {"head": (160, 120, 11), "wrist": (128, 96, 12)}  # name: (width, height, world seed)


class CameraFeed:
    """One camera of the test: its rendered frame, its publisher and the results in its namespace."""

    def __init__(self, client, name: str, width: int, height: int, seed: int):
        self.name = name
        self.shape = (height, width)
        self.rgb = TabletopWorld(width, height).render(seed).rgb
        self.frame_id = f"{name}_optical"
        self.results = client.subscribe(SegmentationResult, interface.camera_topic(name, interface.SEGMENTATION_TOPIC))
        self.image_pub = client.publisher(Image, interface.camera_topic(name, interface.IMAGE_TOPIC))
        self.instruction_pub = client.publisher(
            String, interface.camera_topic(name, interface.INSTRUCTION_TOPIC), qos.INSTRUCTION
        )
        self.sent: set[tuple[int, int]] = set()
        self._next = 1

    def send(self) -> tuple[int, int]:
        msg = array_to_image(self.rgb, "rgb8")
        # Stamps in a range of its own per camera: a result with another camera's stamp would be caught.
        msg.header.stamp = Time(sec=1000 * (1 + list(CAMERAS).index(self.name)), nanosec=self._next * 1000)
        msg.header.frame_id = self.frame_id
        self._next += 1
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.sent.add(key)
        self.image_pub.publish(msg)
        return key


class Session:
    def __init__(self, client, proc, batched: bool):
        self.client, self.proc, self.batched = client, proc, batched
        self.diagnostics = client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
        self.shared_pub = client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION)
        self.cameras = {name: CameraFeed(client, name, *spec) for name, spec in CAMERAS.items()}

    def diagnostic_value(self, camera: str, key: str) -> int:
        """The newest value of `key` in a camera's diagnostics status, waited for up to a diagnostics period."""
        name = interface.diagnostics_status_name("/" + interface.NODE_NAME, camera)
        count = len(self.diagnostics)
        wait_until(lambda: len(self.diagnostics) > count + len(CAMERAS), 10, what="fresh diagnostics")
        for array in reversed(list(self.diagnostics)):
            for status in array.status:
                if status.name == name:
                    return int(next(v.value for v in status.values if v.key == key))
        raise AssertionError(f"no diagnostics status {name}")

    def results_with(self, instructions: dict[str, str], timeout: float = 60.0) -> dict[str, SegmentationResult]:
        """Stream both cameras until each has a result computed with its instruction in `instructions`
        (camera name: instruction); returns the first such result per camera."""
        first = {name: len(camera.results) for name, camera in self.cameras.items()}
        found: dict[str, SegmentationResult] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < len(instructions):
            assert self.proc.returncode is None, self.proc.output()
            for camera in self.cameras.values():
                camera.send()
            time.sleep(0.1)
            for name, instruction in instructions.items():
                results = self.cameras[name].results[first[name] :]
                found.setdefault(name, next((r for r in results if r.instruction == instruction), None))
                if found[name] is None:
                    del found[name]
        assert len(found) == len(instructions), (instructions, found, self.proc.output()[-3000:])
        return found


@pytest.fixture(scope="module", params=["batch", "round_robin"])
def session(tmp_path_factory, request):
    import ros_harness
    from model_fixtures import write_small_checkpoint

    model = write_small_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")
    params = {
        "model_path": str(model),
        "device": "cpu",
        "cameras": f"[{', '.join(CAMERAS)}]",
        "image_reliability": "reliable",
        "score_threshold": 0.0,
        "tracking": "false",
        "cpu_threads": 1,
        "inference_width": 160,
        "inference_height": 128,
        "camera_batching": request.param,
    }
    argv = ros_harness.node_argv(params)
    client = ros_harness.RosTestClient("pmp_cameras_test")
    with ros_harness.running_node(argv, "pmp_node_cameras", STARTUP_TIMEOUT_S) as proc:
        yield Session(client, proc, batched=request.param == "batch")
        client.close()


def _check_own_frame(result: SegmentationResult, camera: CameraFeed) -> None:
    assert (result.header.stamp.sec, result.header.stamp.nanosec) in camera.sent
    assert result.header.frame_id == camera.frame_id
    assert image_to_array(result.label_image).shape == camera.shape


def test_each_camera_is_published_in_its_namespace_with_its_own_frames(session):
    session.shared_pub.publish(String(data=SHARED))
    found = session.results_with(dict.fromkeys(CAMERAS, SHARED))
    for name, camera in session.cameras.items():
        _check_own_frame(found[name], camera)
        for result in list(camera.results):
            _check_own_frame(result, camera)
    # With cameras, nothing is published on the plain names.
    assert session.client.node.count_publishers("/" + interface.SEGMENTATION_TOPIC) == 0
    # A diagnostics status per camera.
    names = {interface.diagnostics_status_name("/" + interface.NODE_NAME, camera) for camera in CAMERAS}
    wait_until(
        lambda: names <= {s.name for array in list(session.diagnostics) for s in array.status},
        30,
        what="a diagnostics status per camera",
    )


def test_no_camera_starves_while_both_stream(session):
    session.shared_pub.publish(String(data=SHARED))
    session.results_with(dict.fromkeys(CAMERAS, SHARED))
    before = {name: len(camera.results) for name, camera in session.cameras.items()}
    end = time.monotonic() + 6.0
    while time.monotonic() < end:  # both at 30 Hz, faster than the worker serves two cameras on one core
        for camera in session.cameras.values():
            camera.send()
        time.sleep(1 / 30)
    time.sleep(1.0)
    answered = {name: len(camera.results) - before[name] for name, camera in session.cameras.items()}
    total = sum(answered.values())
    # In turn, the worker alternates while both have a frame waiting; batched, it serves both at once.
    assert all(count >= 3 and count >= 0.3 * total for count in answered.values()), answered
    batched = {name: session.diagnostic_value(name, "batched_frames") for name in CAMERAS}
    if session.batched:  # the cameras' instructions are the same: their waiting frames share a forward
        assert all(count > 0 for count in batched.values()), batched
    else:
        assert set(batched.values()) == {0}, batched


def test_segment_service_serves_the_first_camera(session):
    future = session.client.call_async(Segment, interface.SEGMENT_SERVICE, Segment.Request(instruction=SHARED))
    deadline = time.monotonic() + 30.0
    while not future.done():  # the service answers with the first camera's next frame
        assert time.monotonic() < deadline, session.proc.output()[-3000:]
        session.cameras["head"].send()
        time.sleep(0.1)
    response = future.result()
    assert response.success, response.error
    _check_own_frame(response.result, session.cameras["head"])


def test_a_cameras_own_instruction_overrides_the_shared_one_for_it_only(session):
    # Last in this module: the wrist follows its own instruction topic from now on.
    session.shared_pub.publish(String(data=SHARED))
    session.results_with(dict.fromkeys(CAMERAS, SHARED))
    session.cameras["wrist"].instruction_pub.publish(String(data="find the green ring"))
    session.results_with({"head": SHARED, "wrist": "find the green ring"})
    session.shared_pub.publish(String(data="pick up the blue cube"))
    changed = {"head": "pick up the blue cube", "wrist": "find the green ring"}
    session.results_with(changed)
    wrist = session.cameras["wrist"]
    arrived = len(wrist.results)  # the head's result says the node has the new shared instruction
    found = session.results_with(changed)
    assert all(r.instruction == "find the green ring" for r in wrist.results[arrived:])
    for name, camera in session.cameras.items():
        _check_own_frame(found[name], camera)
