"""The Foxglove live view: a real WebSocket client (the `websockets` package, Foxglove's protocol) sees every
channel advertised and decodes each message (protobuf from the advertised schema, or JSON); an .mcap file
written by the same view reads back with the `mcap` library with the same channels and messages; the
committed layout opens every channel."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import websockets
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mcap.reader import make_reader

from pmp_ros.objects3d import ObjectCloud
from pmp_ros.viz.live_view import CHANNELS, LiveFrame, LiveObject, LiveView, foxglove_layout
from pmp_ros.viz.overlay import Annotation, instance_colour

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {
    "/pmp/image": "foxglove.CompressedImage",
    "/pmp/overlay": "foxglove.CompressedImage",
    "/pmp/annotations": "foxglove.ImageAnnotations",
    "/pmp/label_image": "foxglove.RawImage",
    "/pmp/objects": "foxglove.SceneUpdate",
    "/pmp/object_points": "foxglove.PointCloud",
    "/pmp/log": "foxglove.Log",
}
RESOLUTION = "1 of 2 target instance(s), by score"


def _frame() -> LiveFrame:
    """Two instances (a 15x10 = 150 px red star with a 3D box and normal, a green ring without 3D), a cloud
    of three points."""
    rgb = np.full((60, 80, 3), 90, np.uint8)
    label = np.zeros((60, 80), np.uint16)
    label[10:20, 10:25] = 1
    label[40:50, 50:70] = 2
    cloud = ObjectCloud(
        xyz=np.array([[0.1, 0.0, 1.0], [0.12, 0.01, 1.0], [-0.2, 0.1, 1.2]], np.float32),
        rgb=np.array([[255, 0, 0], [250, 5, 0], [0, 255, 0]], np.uint8),
        instance_id=np.array([1, 1, 2], np.uint16),
    )
    return LiveFrame(
        stamp_ns=1_700_000_000_123_456_789,
        frame_id="camera_optical",
        rgb=rgb,
        label_image=label,
        annotations=[Annotation(1, "red star", 0.9, 7, (17, 15)), Annotation(2, "green ring", 0.6, 0, (60, 45))],
        objects=[
            LiveObject(
                1,
                "red star",
                0.9,
                7,
                (0.11, 0.0, 1.0),
                ((0.11, 0.0, 1.0), (0, 0, 0, 1), (0.05, 0.04, 0.02)),
                (0.0, 0.0, -1.0),
                (0.11, 0.0, 0.99),
            ),
            LiveObject(2, "green ring", 0.6),
        ],
        cloud=cloud,
        instruction="pick up the red star",
        resolution=RESOLUTION,
        diagnostics_level="OK",
        diagnostics_message="segmenting",
        diagnostics={"rate_hz": "9.50", "dropped_frames": 0},
    )


def _decoder(schema_name: str, encoding: str, schema: bytes):
    """bytes -> a decoded message: protobuf from the FileDescriptorSet the channel carries, or JSON."""
    if encoding == "json":
        return lambda data: json.loads(data)
    files = descriptor_pb2.FileDescriptorSet.FromString(schema)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema_name))
    return cls.FromString


def _check_messages(decoded: dict, frame: LiveFrame) -> None:
    """The messages of one frame, by topic, against what the frame holds."""
    image = cv2.imdecode(np.frombuffer(decoded["/pmp/image"].data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded["/pmp/image"].format == "jpeg" and image.shape == (60, 80, 3)
    assert decoded["/pmp/image"].frame_id == "camera_optical"
    assert decoded["/pmp/image"].timestamp.seconds == 1_700_000_000
    assert decoded["/pmp/image"].timestamp.nanos == 123_456_789
    overlay = cv2.imdecode(np.frombuffer(decoded["/pmp/overlay"].data, np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape[1] == 80 and overlay.shape[0] > 60  # the banner above the image

    annotations = decoded["/pmp/annotations"]
    loops = [p for p in annotations.points if p.type == 2]  # LINE_LOOP: the mask outlines
    crosses = [p for p in annotations.points if p.type == 4]  # LINE_LIST: the labelled points
    assert len(loops) == 2 and len(crosses) == 2
    star = loops[0]
    xs, ys = [p.x for p in star.points], [p.y for p in star.points]
    assert (min(xs), max(xs), min(ys), max(ys)) == (10, 24, 10, 19)
    r, g, b = instance_colour(7)  # tracked: the track's colour
    assert (star.outline_color.r, star.outline_color.g, star.outline_color.b) == pytest.approx(
        (r / 255, g / 255, b / 255)
    )
    assert 0 < star.fill_color.a < 1
    assert [t.text for t in annotations.texts] == ["red star 0.90 #7", "green ring 0.60"]

    label = decoded["/pmp/label_image"]
    assert (label.encoding, label.width, label.height, label.step) == ("mono16", 80, 60, 160)
    np.testing.assert_array_equal(np.frombuffer(label.data, "<u2").reshape(60, 80), frame.label_image)

    scene = decoded["/pmp/objects"]
    assert [d.type for d in scene.deletions] == [1]  # ALL: no object of an earlier frame lingers
    (entity,) = scene.entities  # the green ring has no 3D measurement
    assert entity.frame_id == "camera_optical" and entity.id == "object 7"
    assert (entity.cubes[0].size.x, entity.cubes[0].size.y, entity.cubes[0].size.z) == pytest.approx((0.05, 0.04, 0.02))
    arrow = entity.arrows[0]
    q = arrow.pose.orientation  # +x turned onto the normal (0, 0, -1): a quarter turn about y
    assert (q.x, q.y, q.z, q.w) == pytest.approx((0.0, np.sqrt(0.5), 0.0, np.sqrt(0.5)))
    assert "red star 0.90 #7" in entity.texts[0].text

    cloud = decoded["/pmp/object_points"]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "red", "green", "blue", "alpha", "instance_id"]
    dtype = np.dtype(
        {
            "names": ["x", "red", "instance_id"],
            "formats": ["<f4", "u1", "<u2"],
            "offsets": [0, 12, 16],
            "itemsize": cloud.point_stride,
        }
    )
    points = np.frombuffer(cloud.data, dtype)
    np.testing.assert_allclose(points["x"], [0.1, 0.12, -0.2], rtol=1e-6)
    assert points["red"].tolist() == [255, 250, 0] and points["instance_id"].tolist() == [1, 1, 2]

    result = decoded["/pmp/result"]
    assert result["instruction"] == "pick up the red star" and result["resolution"] == RESOLUTION
    assert [(i["label"], i["track_id"], i["u"], i["v"]) for i in result["instances"]] == [
        ("red star", 7, 17, 15),
        ("green ring", 0, 60, 45),
    ]
    diagnostics = decoded["/pmp/diagnostics"]
    assert diagnostics == {"level": "OK", "message": "segmenting", "values": {"rate_hz": "9.50", "dropped_frames": "0"}}
    assert decoded["/pmp/log"].message == f"pick up the red star: {RESOLUTION}"


async def _client_session(view: LiveView, frame: LiveFrame, timeout_s: float) -> tuple[dict, dict]:
    """Connect, read the advertised channels, subscribe to all, publish the frame once the view sees every
    subscription, and collect one message per channel. Returns (advertised channels by topic, decoded
    messages by topic)."""
    async with websockets.connect(f"ws://127.0.0.1:{view.port}", subprotocols=["foxglove.sdk.v1"]) as ws:
        advertised: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_s
        while set(advertised) != set(CHANNELS.values()):
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message["op"] == "advertise":
                advertised |= {c["topic"]: c for c in message["channels"]}
        by_subscription = {k: c for k, c in enumerate(advertised.values(), start=1)}
        subscriptions = [{"id": k, "channelId": c["id"]} for k, c in by_subscription.items()]
        await ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
        while view.subscribed_topics() != set(CHANNELS.values()):
            assert time.monotonic() < deadline, f"subscribed only {view.subscribed_topics()}"
            await asyncio.sleep(0.05)
        view.publish(frame)
        decoded: dict[str, object] = {}
        while len(decoded) < len(CHANNELS):
            data = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            if isinstance(data, str):
                continue  # status or further advertisements
            assert data[0] == 0x01  # MESSAGE_DATA: opcode, subscription id, log time, payload
            subscription, log_time = struct.unpack_from("<IQ", data, 1)
            channel = by_subscription[subscription]
            schema = channel["schema"]
            raw_schema = base64.b64decode(schema) if channel["schemaEncoding"] == "protobuf" else schema.encode()
            decode = _decoder(channel["schemaName"], channel["encoding"], raw_schema)
            assert log_time == frame.stamp_ns
            decoded[channel["topic"]] = decode(data[13:])
        return advertised, decoded


def test_websocket_client_receives_every_channel():
    frame = _frame()
    with LiveView(port=0) as view:
        assert view.port and view.subscribed_topics() == set()  # nobody connected: nothing is encoded
        advertised, decoded = asyncio.run(_client_session(view, frame, timeout_s=60.0))
    assert set(advertised) == set(CHANNELS.values())
    for topic, schema_name in SCHEMAS.items():
        assert (advertised[topic]["schemaName"], advertised[topic]["encoding"]) == (schema_name, "protobuf")
    assert advertised["/pmp/result"]["encoding"] == advertised["/pmp/diagnostics"]["encoding"] == "json"
    _check_messages(decoded, frame)


def test_mcap_reads_back_with_the_same_channels(tmp_path):
    frame = _frame()
    path = tmp_path / "live.mcap"
    with LiveView(mcap_path=path) as view:
        assert view.port is None
        view.publish(frame)
        view.publish(frame)  # the same instruction and resolution: one log line, two of the rest
    with path.open("rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        topics = {c.topic for c in summary.channels.values()}
        messages = list(reader.iter_messages())
    assert topics == set(CHANNELS.values())
    counts = {topic: sum(c.topic == topic for _, c, _ in messages) for topic in topics}
    assert counts == {topic: 1 if topic == "/pmp/log" else 2 for topic in topics}
    decoded = {}
    for schema, channel, message in messages:
        decoded[channel.topic] = _decoder(schema.name, channel.message_encoding, schema.data)(message.data)
        assert message.log_time == frame.stamp_ns
    for topic, schema_name in SCHEMAS.items():
        assert next(s.name for s, c, _ in messages if c.topic == topic) == schema_name
    _check_messages(decoded, frame)


def test_live_view_needs_a_sink():
    with pytest.raises(ValueError, match="port, an mcap_path"):
        LiveView()


def test_a_taken_port_is_an_error_not_a_hang():
    with LiveView(port=0) as first, pytest.raises(RuntimeError):
        LiveView(port=first.port)


def test_committed_layout_is_generated_and_opens_every_channel():
    committed = json.loads((ROOT / "config" / "foxglove_layout.json").read_text())
    assert committed == foxglove_layout(), "regenerate: python -m pmp_ros.viz.live_view --write-layout ..."
    text = json.dumps(committed)
    missing = [topic for topic in CHANNELS.values() if f'"{topic}"' not in text]
    assert not missing, f"channels no panel opens: {missing}"
    panels = set(committed["configById"])

    def leaves(node):
        return [node] if isinstance(node, str) else leaves(node["first"]) + leaves(node["second"])

    assert sorted(leaves(committed["layout"])) == sorted(panels)  # every configured panel is placed
