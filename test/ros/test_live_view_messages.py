"""The node's messages of one frame -> the live view's LiveFrame (pmp_ros/ros/live_view.py)."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from pmp_ros.geometry import PointEstimate
from pmp_ros.language.parse import parse_instruction
from pmp_ros.model.inference import Instance, Prediction
from pmp_ros.objects3d import Object3D, ObjectCloud, OrientedBox
from pmp_ros.ros import messages
from pmp_ros.ros.live_view import cloud_points, live_frame, open_live_view

HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical")


def _outputs():
    label = np.zeros((20, 30), np.uint16)
    label[2:6, 3:9] = 1
    label[10:15, 20:30] = 2
    prediction = Prediction(
        label,
        [
            Instance(1, "red star", 0, 0.9, (3, 2, 8, 5), 24, label == 1),
            Instance(2, "green ring", 1, 0.7, (20, 10, 29, 14), 50, label == 2),
        ],
        None,
    )
    points = [PointEstimate(5, 3, (0.1, -0.2, 1.5)), PointEstimate(25, 12, None)]
    box = OrientedBox((0.1, -0.2, 1.52), (0.0, 0.0, 0.0, 1.0), (0.04, 0.03, 0.02))
    measured = [Object3D(1, 20, (0.1, -0.2, 1.51), box, (5, 3), (0.0, 0.0, -1.0), None), None]
    tracks = {1: 5}
    result = messages.segmentation_result(
        HEADER, "the red star", parse_instruction("the red star"), ["red star"], "1 of 2 by score", prediction, tracks
    )
    return (
        result,
        messages.labelled_points(HEADER, "the red star", prediction, points, tracks),
        messages.objects_3d(HEADER, "the red star", prediction, measured, tracks),
    )


def test_live_frame_from_the_node_messages():
    result, points, objects = _outputs()
    cloud = ObjectCloud(
        np.array([[0.1, -0.2, 1.5], [0.11, -0.2, 1.5]], np.float32),
        np.array([[200, 10, 20], [190, 0, 30]], np.uint8),
        np.array([1, 1], np.uint16),
    )
    status = DiagnosticStatus(level=DiagnosticStatus.WARN, message="slow")
    rgb = np.zeros((20, 30, 3), np.uint8)
    frame = live_frame(rgb, result, points, objects, messages.object_cloud(HEADER, cloud), status)
    assert frame.stamp_ns == 12_000_000_345 and frame.frame_id == "camera_optical"
    assert (frame.instruction, frame.resolution) == ("the red star", "1 of 2 by score")
    assert [(a.id, a.label, a.track_id, a.point) for a in frame.annotations] == [
        (1, "red star", 5, (5, 3)),
        (2, "green ring", 0, (25, 12)),
    ]
    np.testing.assert_array_equal(frame.label_image, result_label(result))
    star, ring = frame.objects
    assert star.box[2] == pytest.approx((0.04, 0.03, 0.02)) and star.normal == pytest.approx((0.0, 0.0, -1.0))
    assert star.normal_origin == pytest.approx((0.1, -0.2, 1.5)) and star.track_id == 5
    assert (ring.centroid, ring.box, ring.normal) == (None, None, None)  # nothing measured
    np.testing.assert_allclose(frame.cloud.xyz, cloud.xyz)
    np.testing.assert_array_equal(frame.cloud.rgb, cloud.rgb)
    np.testing.assert_array_equal(frame.cloud.instance_id, cloud.instance_id)
    assert (frame.diagnostics_level, frame.diagnostics_message) == ("WARN", "slow")


def result_label(result):
    return np.frombuffer(bytes(result.label_image.data), "<u2").reshape(20, 30)


def test_cloud_of_another_layout_is_refused():
    msg = messages.object_cloud(
        HEADER, ObjectCloud(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8), np.ones(1, np.uint16))
    )
    msg.fields = msg.fields[:3]
    with pytest.raises(ValueError, match="not an object cloud"):
        cloud_points(msg)


def test_port_zero_is_off(tmp_path):
    assert open_live_view(0) is None
    view = open_live_view(0, mcap_path=tmp_path / "node.mcap")
    try:
        assert view is not None and view.port is None
    finally:
        view.close()
