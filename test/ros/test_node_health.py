"""The node's diagnostics tell the truth (issue #26, item 3): a camera whose every recent frame is rejected is
WARN with the reason, depth that is never usable is WARN with the reason (camera info without a calibration,
depth stamps never within depth_max_age: by how much), a camera that lowers its rate loses no frame, and the
depth range parameters bound the 3D points. One node with use_depth in its own process over DDS."""

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros_msgs.msg import LabelledPointArray

import ros_harness
from ros_harness import node_argv, wait_until

K = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]


class Camera:
    """The test's camera: colour, depth and camera info publishers with stamps of its own clock."""

    def __init__(self, client):
        self.client = client
        self.image = client.publisher(Image, interface.IMAGE_TOPIC)
        self.depth = client.publisher(Image, interface.DEPTH_TOPIC)
        self.info = client.publisher(CameraInfo, interface.DEPTH_INFO_TOPIC)
        self.diagnostics = client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
        self.points = client.subscribe(LabelledPointArray, interface.POINTS_TOPIC)
        self.t = 1000.0

    def send(self, rgb=None, depth_m=1.0, depth_offset_s=0.0, k=K, encoding="rgb8", period_s=1 / 30):
        """One frame (and its depth and camera info) `period_s` after the last."""
        self.t += period_s
        header = Header(stamp=_stamp(self.t), frame_id="camera")
        rgb = np.full((48, 64, 3), 120, np.uint8) if rgb is None else rgb
        self.info.publish(CameraInfo(header=header, height=48, width=64, k=k))
        depth = np.full((48, 64), depth_m, np.float32)
        self.depth.publish(array_to_image(depth, "32FC1", Header(stamp=_stamp(self.t + depth_offset_s))))
        msg = array_to_image(rgb, "rgb8", header)
        msg.encoding = encoding
        self.image.publish(msg)

    def status(self, timeout=30.0) -> DiagnosticStatus:
        start = len(self.diagnostics)
        wait_until(lambda: len(self.diagnostics) > start, timeout, what="diagnostics")
        return self.diagnostics[-1].status[0]

    def until_status(self, accept, what, **frame):
        """Send frames (keyword arguments: send's) until a status `accept`s; returns it."""
        found = []

        def check():
            self.send(**frame)
            status = self.diagnostics[-1].status[0] if self.diagnostics else None
            if status is not None and accept(status):
                found.append(status)
            return found

        wait_until(check, 60, interval=0.1, what=what)
        return found[0]


def _stamp(t):
    return Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)) % 1_000_000_000)


def _values(status):
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture(scope="module")
def camera(model_file):
    client = ros_harness.RosTestClient("pmp_health_test")
    params = {
        "model_path": str(model_file),
        "device": "cpu",
        "cpu_threads": 1,
        "tracking": "false",
        "score_threshold": 0.0,
        "use_depth": "true",
        "image_reliability": "reliable",
    }
    with ros_harness.running_node(node_argv(params), "health_node"):
        cam = Camera(client)
        client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION).publish(String(data="find everything"))
        cam.until_status(lambda s: s.level == DiagnosticStatus.OK, "an OK status with good frames")
        yield cam
        client.close()


def test_a_camera_whose_every_frame_is_rejected_is_warn_with_the_reason(camera):
    status = camera.until_status(
        lambda s: "every frame of the last 5 s was rejected" in s.message, "the WARN", encoding="yuv422"
    )
    assert status.level == DiagnosticStatus.WARN and "yuv422" in status.message, status.message
    camera.until_status(lambda s: "rejected" not in s.message, "the good frames to clear it")


def test_depth_never_within_the_tolerance_is_warn_saying_by_how_much(camera):
    status = camera.until_status(lambda s: "0.300 s behind" in s.message, "the depth WARN", depth_offset_s=-0.3)
    assert status.level == DiagnosticStatus.WARN and "never within depth_max_age 0.050 s" in status.message
    camera.until_status(lambda s: "depth" not in s.message, "matching depth to clear it")


def test_camera_info_without_a_calibration_is_warn(camera):
    status = camera.until_status(lambda s: "has no calibration" in s.message, "the info WARN", k=[0.0] * 9)
    assert status.level == DiagnosticStatus.WARN
    camera.until_status(lambda s: "calibration" not in s.message, "a calibrated info to clear it")


def test_a_camera_that_lowers_its_rate_loses_nothing(camera):
    before = int(_values(camera.status())["images_missing"])
    # Paced (the stamps are the camera's, not the wall clock's) so that the node's subscription queue never
    # overflows: a frame lost there would be a real loss.
    for _ in range(40):
        camera.send(period_s=1 / 30)
        time.sleep(0.1)
    received = int(_values(camera.status())["images_received"])
    for _ in range(40):
        camera.send(period_s=1 / 10)  # the camera at 10 Hz now
        time.sleep(0.1)
    wait_until(lambda: int(_values(camera.status())["images_received"]) >= received + 40, 60, what="the frames")
    assert int(_values(camera.status())["images_missing"]) == before


def test_depth_outside_depth_min_max_gives_no_3d_position(camera):
    from rcl_interfaces.srv import SetParameters

    def set_depth_max(value):
        request = SetParameters.Request(parameters=[Parameter("depth_max", value=value).to_parameter_msg()])
        (result,) = camera.client.call(SetParameters, f"/{interface.NODE_NAME}/set_parameters", request).results
        assert result.successful, result.reason

    def valid_points(valid):
        def check():
            camera.send(depth_m=2.0)
            return [m for m in camera.points[-3:] if m.points and all(p.position_valid == valid for p in m.points)]

        return check

    wait_until(valid_points(True), 60, interval=0.1, what="valid positions at 2 m")
    set_depth_max(1.5)
    try:
        start = len(camera.points)
        wait_until(
            lambda: valid_points(False)() and len(camera.points) > start + 3, 60, interval=0.1, what="no position"
        )
    finally:
        set_depth_max(20.0)
