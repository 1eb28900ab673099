"""The node's outputs for ordinary ROS and viewing tools, read back in this process while the node runs in its
own: vision_msgs Detection2DArray and Detection3DArray (issue #25 item 6) agree with the node's own messages
of the same frame, the label_image topic is the result's label image, and the Foxglove live view (the
foxglove_port parameter) streams the results to a WebSocket client."""

import asyncio
import json
import socket
import threading
import time

import numpy as np
import pytest
import websockets
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection2DArray, Detection3DArray

from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image, image_to_array
from pmp_ros_msgs.msg import Object3DArray, SegmentationResult

import ros_harness
from ros_harness import node_argv, wait_until

K = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
INSTRUCTION = "find everything"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def node(model_file):
    """(the node's process, the test client, the Foxglove port, a function sending one frame with depth)."""
    client = ros_harness.RosTestClient("pmp_outputs_test")
    port = _free_port()
    params = {
        "model_path": str(model_file),
        "device": "cpu",
        "cpu_threads": 1,
        "tracking": "false",
        "score_threshold": 0.0,
        "use_depth": "true",
        "image_reliability": "reliable",
        "foxglove_port": port,
    }
    with ros_harness.running_node(node_argv(params), "outputs_node") as proc:
        image = client.publisher(Image, interface.IMAGE_TOPIC)
        depth = client.publisher(Image, interface.DEPTH_TOPIC)
        info = client.publisher(CameraInfo, interface.DEPTH_INFO_TOPIC)
        client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION).publish(String(data=INSTRUCTION))
        rng = np.random.default_rng(3)
        count = [0]

        def send():
            count[0] += 1
            header = Header(stamp=Time(sec=500 + count[0]), frame_id="camera")
            info.publish(CameraInfo(header=header, height=48, width=64, k=K))
            depth.publish(array_to_image(np.full((48, 64), 1.2, np.float32), "32FC1", header))
            image.publish(array_to_image(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "rgb8", header))

        yield proc, client, port, send
        client.close()


def _by_stamp(messages):
    return {m.header.stamp.sec: m for m in list(messages)}


def test_detections_are_vision_msgs_that_agree_with_the_results(node):
    _, client, _, send = node
    results = client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    objects = client.subscribe(Object3DArray, interface.OBJECTS_TOPIC)
    detections = client.subscribe(Detection2DArray, interface.DETECTIONS_TOPIC)
    detections_3d = client.subscribe(Detection3DArray, interface.DETECTIONS_3D_TOPIC)
    client.wait_for_publisher(interface.DETECTIONS_TOPIC)

    def answered():
        send()
        both = set(_by_stamp(results)) & set(_by_stamp(detections)) & set(_by_stamp(detections_3d))
        return [s for s in both if _by_stamp(results)[s].instances and s in _by_stamp(objects)]

    stamps = wait_until(answered, 120, interval=0.3, what="results, objects and detections of one frame")
    stamp = stamps[0]
    result, array = _by_stamp(results)[stamp], _by_stamp(detections)[stamp]
    assert array.header == result.header and len(array.detections) == len(result.instances)
    for instance, detection in zip(result.instances, array.detections):
        (hypothesis,) = detection.results
        assert hypothesis.hypothesis.class_id == instance.label
        assert hypothesis.hypothesis.score == pytest.approx(instance.score)
        assert detection.id == ""  # tracking off: track id 0 gives no id
        assert detection.bbox.size_x == instance.roi.width and detection.bbox.size_y == instance.roi.height
        assert detection.bbox.center.position.x == pytest.approx(instance.roi.x_offset + instance.roi.width / 2)
    measured, array_3d = _by_stamp(objects)[stamp], _by_stamp(detections_3d)[stamp]
    with_points = [o for o in measured.objects if o.num_points]
    assert with_points and len(array_3d.detections) == len(with_points)
    for item, detection in zip(with_points, array_3d.detections):
        assert detection.bbox.center == item.box_pose and detection.bbox.size == item.box_size
        assert detection.results[0].hypothesis.class_id == item.label
        assert detection.results[0].pose.pose.position == item.centroid
        assert abs(item.centroid.z - 1.2) < 0.05  # the depth sent


def test_the_label_image_topic_is_the_results_label_image(node):
    _, client, _, send = node
    results = client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    labels = client.subscribe(Image, interface.LABEL_IMAGE_TOPIC)
    client.wait_for_publisher(interface.LABEL_IMAGE_TOPIC)

    def answered():
        send()
        return sorted(set(_by_stamp(results)) & set(_by_stamp(labels)))

    stamp = wait_until(answered, 120, interval=0.3, what="a label image and its result")[0]
    label = _by_stamp(labels)[stamp]
    assert label.encoding == "mono16"
    np.testing.assert_array_equal(image_to_array(label), image_to_array(_by_stamp(results)[stamp].label_image))


def test_the_live_view_streams_the_results_to_a_foxglove_client(node):
    proc, _, port, send = node
    assert f"live view: Foxglove on ws://127.0.0.1:{port}" in proc.output()
    received: list[dict] = []
    errors: list = []
    done = threading.Event()

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"]) as ws:
            topics = {}
            while not done.is_set():
                try:
                    data = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                if isinstance(data, str):
                    message = json.loads(data)
                    if message["op"] == "advertise":
                        wanted = [c for c in message["channels"] if c["topic"] == "/pmp/result"]
                        subscriptions = [{"id": 1, "channelId": c["id"]} for c in wanted]
                        topics |= {1: "/pmp/result"} if wanted else {}
                        await ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
                elif int.from_bytes(data[1:5], "little") in topics:
                    received.append(json.loads(bytes(data[13:])))

    def run():
        try:
            asyncio.run(session())
        except Exception as error:  # reported by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: errors or (send() or time.sleep(0.2) or received), 120, what="a result in the live view")
    finally:
        done.set()
        thread.join(10)
    assert not errors, errors
    assert received[0]["instruction"] == INSTRUCTION, received[0]
