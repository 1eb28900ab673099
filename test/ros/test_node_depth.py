"""3D through the node with the shipped model: depth + camera info in, labelled points out whose 3D position
is the back-projection of the true depth at their pixel and lies on the object they mark, 3D objects whose
centroids, boxes and normals match the world's objects, and the objects' point cloud; an uncalibrated camera
info (all-zero k) is logged and counted, and 3D comes back with a calibrated one."""

import math
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header, String

from pmp_ros.data import splits
from pmp_ros.data.world import TabletopWorld
from pmp_ros.geometry import backproject
from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros.ros.node import READY_TEXT
from pmp_ros_msgs.msg import LabelledPointArray, Object3DArray

from ros_harness import NodeProcess, python_module, wait_until

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pmp_default.safetensors"
INSTRUCTION_QOS = qos.INSTRUCTION


def test_points_from_depth_lie_on_the_objects_they_mark(ros_client):
    scene = TabletopWorld().render(splits.TEST[3])
    names = sorted({o.class_name for o in scene.objects})
    instruction = "find " + " and ".join(f"every {n}" for n in names[:3])
    header = Header(stamp=Time(sec=123, nanosec=456), frame_id="camera_color_optical_frame")
    depth_mm = np.round(scene.depth_gt * 1000).astype(np.uint16)
    info = CameraInfo(
        header=header, height=scene.K.height, width=scene.K.width, k=scene.K.matrix().reshape(-1).tolist()
    )

    points = ros_client.subscribe(LabelledPointArray, interface.POINTS_TOPIC)
    objects = ros_client.subscribe(Object3DArray, interface.OBJECTS_TOPIC)
    clouds = ros_client.subscribe(PointCloud2, interface.OBJECT_POINTS_TOPIC)
    argv = python_module(
        "pmp_ros.ros.node",
        "--ros-args",
        "-p",
        f"model_path:={SHIPPED}",
        "-p",
        "use_depth:=true",
        "-p",
        "image_reliability:=reliable",
        "-p",
        "cpu_threads:=1",
    )
    with NodeProcess(argv, name="depth_node") as proc:
        proc.wait_for_output(READY_TEXT, 180)
        ros_client.publisher(String, interface.INSTRUCTION_TOPIC, INSTRUCTION_QOS).publish(String(data=instruction))
        info_pub = ros_client.publisher(CameraInfo, interface.DEPTH_INFO_TOPIC, 10)
        depth_pub = ros_client.publisher(Image, interface.DEPTH_TOPIC, 10)
        image_pub = ros_client.publisher(Image, interface.IMAGE_TOPIC, 10)

        def send():
            info_pub.publish(info)
            depth_pub.publish(array_to_image(depth_mm, "16UC1", header))
            image_pub.publish(array_to_image(scene.rgb, "rgb8", header))
            return any(m.instruction == instruction and m.points for m in points) and objects and clouds

        wait_until(send, 120, interval=0.5, what="labelled points, objects and a cloud for the instruction")
    # Every frame is the same scene with the same header; the first ones may have been computed before the
    # camera info arrived, the last ones with it.
    result = [m for m in points if m.instruction == instruction and m.points][-1]
    _check_objects(scene, result, objects[-1])
    _check_cloud(clouds[-1], objects)
    assert result.header.frame_id == "camera_color_optical_frame" and result.header.stamp.sec == 123
    on_objects = 0
    for point in result.points:
        assert point.position_valid, point
        x, y, z = backproject(point.u, point.v, scene.depth_gt[point.v, point.u], scene.K.matrix())
        # The node takes a median over a 5x5 window inside the mask: equal to the pixel's depth within a
        # few millimetres on these flat faces, except at a face border.
        assert math.dist((x, y, z), (point.position.x, point.position.y, point.position.z)) < 0.03, point
        object_id = int(scene.instance[point.v, point.u])
        if object_id:
            obj = next(o for o in scene.objects if o.id == object_id)
            on_objects += 1
            # A point on the object's visible surface is within its radius + height of the top centre.
            assert (
                math.dist(obj.center_cam, (point.position.x, point.position.y, point.position.z))
                <= obj.radius_m + obj.height_m + 0.01
            ), (obj.class_name, point)
    assert on_objects >= 1, "no labelled point fell on an object"


def _check_objects(scene, points, found):
    """One Object3D per labelled point (same ids, order); on an object its centroid is near the object's
    visible centre, its box no larger than the object, and its normal faces the camera, mostly along the
    table's up direction (the world's objects show their flat top faces; a point near a side face may take
    that face's normal)."""
    assert [o.instance_id for o in found.objects] == [p.instance_id for p in points.points]
    assert found.header == points.header and found.instruction == points.instruction
    up = np.asarray(scene.table_plane[0])
    checked = along_up = 0
    for item, point in zip(found.objects, points.points):
        object_id = int(scene.instance[point.v, point.u])
        assert item.num_points > 0 and item.label == point.label
        if not object_id:
            continue
        obj = next(o for o in scene.objects if o.id == object_id)
        if obj.visible_area < 100:
            continue
        centroid = (item.centroid.x, item.centroid.y, item.centroid.z)
        # The instance's mask may miss part of the object or spill onto the table: a loose bound.
        assert math.dist(centroid, obj.visible_center_cam) < obj.radius_m + 0.02, (obj.class_name, item)
        assert max(item.box_size.x, item.box_size.y, item.box_size.z) < 2 * obj.radius_m + obj.height_m + 0.05
        assert item.normal_valid
        normal = np.array([item.normal.x, item.normal.y, item.normal.z])
        assert abs(np.linalg.norm(normal) - 1) < 1e-3 and normal[2] < 0  # faces the camera
        along_up += np.degrees(np.arccos(np.clip(normal @ up, -1, 1))) < 15
        checked += 1
    assert checked >= 1 and along_up >= checked / 2, (checked, along_up)


def _check_cloud(cloud, objects):
    ids = {o.instance_id for array in objects for o in array.objects}
    assert cloud.height == 1 and cloud.width > 0 and cloud.point_step == 20
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "instance_id"]
    layout = np.dtype({"names": ["z", "id"], "formats": ["<f4", "<u2"], "offsets": [8, 16], "itemsize": 20})
    data = np.frombuffer(bytes(cloud.data), layout)
    assert set(np.unique(data["id"])) <= ids and (data["z"] > 0).all()


def test_uncalibrated_camera_info_is_reported_and_3d_returns_with_a_calibration(ros_client, tmp_path):
    from model_fixtures import write_small_checkpoint

    model = write_small_checkpoint(tmp_path / "tiny.safetensors")
    rgb = TabletopWorld(128, 96).render(splits.TEST[0]).rgb
    depth_mm = np.full(rgb.shape[:2], 800, np.uint16)  # valid depth everywhere: only k decides about 3D
    calibrated = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]]).reshape(-1).tolist()
    points = ros_client.subscribe(LabelledPointArray, interface.POINTS_TOPIC)
    diagnostics = ros_client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    # Best-effort image QoS set by hand: the node warns at startup about the frame size it carries.
    argv = python_module(
        "pmp_ros.ros.node",
        "--ros-args",
        *[
            x
            for p in (
                f"model_path:={model}",
                "use_depth:=true",
                "cpu_threads:=1",
                "device:=cpu",
                "score_threshold:=0.0",
                "context_vocabulary:=['table']",
                # Per-frame instances: the random model's scores are below the tracker's new_track_score.
                "tracking:=false",
                "image_reliability:=best_effort",
            )
            for x in ("-p", p)
        ],
    )
    with NodeProcess(argv, name="uncalibrated_node") as proc:
        proc.wait_for_output(READY_TEXT, 180)
        ros_client.publisher(String, interface.INSTRUCTION_TOPIC, INSTRUCTION_QOS).publish(
            String(data="pick up the red star")
        )
        info_pub = ros_client.publisher(CameraInfo, interface.DEPTH_INFO_TOPIC, 10)
        depth_pub = ros_client.publisher(Image, interface.DEPTH_TOPIC, 10)
        image_pub = ros_client.publisher(Image, interface.IMAGE_TOPIC, 10)
        stamp = iter(range(1, 10**6))

        def send_until_points(k, valid):
            """Send frames with camera info k until the points of one all have position_valid == valid (a
            frame processed before its camera info arrived may still use the previous one)."""

            def send():
                header = Header(stamp=Time(sec=7, nanosec=next(stamp)), frame_id="camera_color_optical_frame")
                info_pub.publish(CameraInfo(header=header, height=96, width=128, k=k))
                depth_pub.publish(array_to_image(depth_mm, "16UC1", header))
                image_pub.publish(array_to_image(rgb, "rgb8", header))
                return any(m.points and all(p.position_valid == valid for p in m.points) for m in points[first:])

            first = len(points)
            wait_until(send, 120, interval=0.3, what=f"labelled points with position_valid {valid}")

        send_until_points([0.0] * 9, valid=False)
        wait_until(
            lambda: (
                diagnostics
                and int(dict((v.key, v.value) for v in diagnostics[-1].status[0].values)["bad_camera_info"]) > 0
            ),
            30,
            what="bad_camera_info counted",
        )
        send_until_points(calibrated, valid=True)  # 3D was off because of k alone
        output = proc.output()
    assert "camera info without a calibration" in output
    assert "image_reliability best_effort: raw frames larger than about" in output
