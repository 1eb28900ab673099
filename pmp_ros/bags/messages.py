"""Evaluation bags: topic layout, frames <-> ROS messages, ground truth <-> metric inputs.

Messages are built and (de)serialised with rclpy's own types (pmp_ros.ros.client.serialize), so what is recorded is
byte for byte what a robot's driver would publish; rosbags only stores the bytes (bag_storage.py).

Layout of the bags pmp-write-bag records (all topics absolute; every message of a frame carries the colour
image's header stamp and frame_id):
  /image                  sensor_msgs/Image rgb8
  /depth/image            sensor_msgs/Image 16UC1 millimetres, registered to the colour image
  /depth/camera_info      sensor_msgs/CameraInfo of the depth (= colour) image
  /instruction            std_msgs/String, recorded when it changes
  /ground_truth           pmp_ros_msgs/GroundTruth (docs/bags.md)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from pmp_ros.data.prism import Prism
from pmp_ros.data.streams import StreamFrame, TruthObject
from pmp_ros.eval.metrics.frame_metrics import FramePrediction, FrameTruth
from pmp_ros.language.parse import InstructionParseError, parse_instruction
from pmp_ros.objects3d import Object3D, OrientedBox
from pmp_ros.ros import interface
from pmp_ros.ros.client import deserialize as deserialize_bytes
from pmp_ros.ros.client import serialize
from pmp_ros.ros.image_conversion import array_to_image, image_to_array, label_image_to_msg
from pmp_ros_msgs.msg import GroundTruth, GroundTruthObject, LabelledPointArray, Object3DArray, SegmentationResult

GT_TOPIC = "/ground_truth"
FRAME_ID = "camera_color_optical_frame"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
STRING_TYPE = "std_msgs/msg/String"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
GT_TYPE = "pmp_ros_msgs/msg/GroundTruth"
GT_OBJECT_TYPE = "pmp_ros_msgs/msg/GroundTruthObject"

# Roles of the topics an evaluation reads, the bag message types accepted for each and the Python class.
ROLE_TYPES: dict[str, tuple[str, ...]] = {
    "image": (IMAGE_TYPE, COMPRESSED_TYPE),
    "instruction": (STRING_TYPE,),
    "depth": (IMAGE_TYPE,),
    "depth_info": (CAMERA_INFO_TYPE,),
    "gt": (GT_TYPE,),
}
MESSAGE_CLASSES = {
    IMAGE_TYPE: Image,
    COMPRESSED_TYPE: CompressedImage,
    STRING_TYPE: String,
    CAMERA_INFO_TYPE: CameraInfo,
    GT_TYPE: GroundTruth,
}


@dataclass(frozen=True)
class BagTopics:
    """Bag topic per role; a robot bag names them its own way (pmp-eval-bag --image-topic ...)."""

    image: str = "/" + interface.IMAGE_TOPIC
    instruction: str = "/" + interface.INSTRUCTION_TOPIC
    depth: str = "/" + interface.DEPTH_TOPIC
    depth_info: str = "/" + interface.DEPTH_INFO_TOPIC
    gt: str = GT_TOPIC

    def by_topic(self) -> dict[str, str]:
        """topic -> role (a topic given for two roles keeps the first)."""
        out: dict[str, str] = {}
        for role in ROLE_TYPES:
            out.setdefault(getattr(self, role), role)
        return out


def stamp_key(stamp) -> tuple[int, int]:
    """(sec, nanosec) of a builtin_interfaces/Time: frames are identified by their header stamp."""
    return int(stamp.sec), int(stamp.nanosec)


def header_stamp(data: bytes | memoryview) -> tuple[int, int]:
    """(sec, nanosec) of a serialised message that begins with a std_msgs/Header (Image, CompressedImage,
    GroundTruth), read from the CDR bytes without deserialising megabytes of pixels."""
    if len(data) < 12:
        raise ValueError(f"message of {len(data)} bytes is too short for a header")
    little = data[1] & 1  # CDR encapsulation: 0x0001 = little endian, 0x0000 = big endian
    order = "<" if little else ">"
    sec, nanosec = np.frombuffer(bytes(data[4:12]), dtype=np.dtype(f"{order}i4, {order}u4"))[0]
    return int(sec), int(nanosec)


def header_of(frame: StreamFrame) -> Header:
    sec, nanosec = divmod(frame.stamp_ns, 10**9)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=FRAME_ID)


def camera_info(header: Header, k: np.ndarray, width: int, height: int) -> CameraInfo:
    """A distortion-free pinhole CameraInfo with intrinsics k (3x3)."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    projection = np.zeros((3, 4))
    projection[:, :3] = k
    return CameraInfo(
        header=header,
        width=width,
        height=height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k.ravel().tolist(),
        r=np.eye(3).ravel().tolist(),
        p=projection.ravel().tolist(),
    )


def ground_truth(header: Header, frame: StreamFrame) -> GroundTruth | None:
    """The frame's GroundTruth message, or None for a frame without masks."""
    if frame.instance is None:
        return None
    objects = [ground_truth_object(o) for o in frame.objects]
    return GroundTruth(
        header=header,
        instance_image=label_image_to_msg(frame.instance, header),
        objects=objects,
        instruction=frame.instruction,
        target_ids=list(frame.target_ids),
    )


def ground_truth_object(truth: TruthObject) -> GroundTruthObject:
    """The GroundTruthObject of one object in view (an empty shape without its prism)."""
    msg = GroundTruthObject(
        id=truth.id,
        label=truth.label,
        centre=_point(truth.centre),
        area=truth.area,
        occlusion=truth.occlusion,
        visible_centre=_point(truth.visible_centre),
    )
    if truth.prism is None:
        msg.pose.orientation.w = 1.0
    else:
        prism = truth.prism
        qx, qy, qz, qw = prism.quaternion
        msg.shape, msg.radius, msg.height = prism.shape, prism.radius_m, prism.height_m
        msg.pose = Pose(position=_point(prism.origin), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
    return msg


def _point(xyz) -> Point:
    x, y, z = (float(c) for c in xyz)
    return Point(x=x, y=y, z=z)


def frame_messages(frame: StreamFrame, instruction_changed: bool) -> list[tuple[str, str, bytes]]:
    """(role, message type, CDR bytes) of one frame, in the order a player should publish them: instruction
    (when it changed), depth and camera info, ground truth, and the colour image last, so everything the
    node needs for the frame is already out when the image arrives."""
    header = header_of(frame)
    height, width = frame.rgb.shape[:2]
    out = []
    if instruction_changed:
        out.append(("instruction", STRING_TYPE, String(data=frame.instruction)))
    if frame.depth_mm is not None and frame.k is not None:
        out.append(("depth_info", CAMERA_INFO_TYPE, camera_info(header, frame.k, width, height)))
        out.append(("depth", IMAGE_TYPE, array_to_image(frame.depth_mm, "16UC1", header)))
    truth = ground_truth(header, frame)
    if truth is not None:
        out.append(("gt", GT_TYPE, truth))
    out.append(("image", IMAGE_TYPE, array_to_image(np.ascontiguousarray(frame.rgb), "rgb8", header)))
    return [(role, msgtype, serialize(msg)) for role, msgtype, msg in out]


def deserialize(data: bytes, msgtype: str):
    return deserialize_bytes(data, MESSAGE_CLASSES[msgtype])


def truth_from_message(msg: GroundTruth, k: np.ndarray | None = None) -> FrameTruth:
    """FrameTruth for the metrics; values that are unknown (NaN coordinates or occlusion, an empty shape)
    are left out. k: the camera's 3x3 intrinsics (from the bag's camera info), for the normals' truths."""
    try:
        prompts = parse_instruction(msg.instruction).targets if msg.instruction.strip() else ()
    except InstructionParseError:
        prompts = ()
    return FrameTruth(
        instance_image=np.array(image_to_array(msg.instance_image), dtype=np.uint16),
        class_names={int(o.id): o.label for o in msg.objects},
        target_ids=tuple(int(i) for i in msg.target_ids),
        centres=_known_points({int(o.id): o.centre for o in msg.objects}),
        prompts=prompts,
        occlusions={int(o.id): float(o.occlusion) for o in msg.objects if math.isfinite(o.occlusion)},
        visible_centres=_known_points({int(o.id): o.visible_centre for o in msg.objects}),
        prisms={int(o.id): _prism(o) for o in msg.objects if o.shape},
        k=k,
    )


def _known_points(points: dict[int, Point]) -> dict[int, tuple[float, float, float]]:
    """(x, y, z) of the points without a NaN coordinate (NaN: unknown)."""
    xyz = {i: (p.x, p.y, p.z) for i, p in points.items()}
    return {i: c for i, c in xyz.items() if all(math.isfinite(v) for v in c)}


def _prism(msg: GroundTruthObject) -> Prism:
    q, position = msg.pose.orientation, msg.pose.position
    return Prism(msg.shape, msg.radius, msg.height, (position.x, position.y, position.z), (q.x, q.y, q.z, q.w))


def prediction_from_messages(
    result: SegmentationResult, points: LabelledPointArray | None, objects: Object3DArray | None = None
) -> FramePrediction:
    """FramePrediction from the node's outputs of one frame (points, objects None: not received)."""
    return FramePrediction(
        label_image=np.array(image_to_array(result.label_image), dtype=np.uint16),
        instances=[(int(i.id), i.label, float(i.score)) for i in result.instances],
        points=[
            (
                int(p.instance_id),
                int(p.u),
                int(p.v),
                (p.position.x, p.position.y, p.position.z) if p.position_valid else None,
            )
            for p in (points.points if points is not None else [])
        ],
        objects=objects_from_messages(objects, points) if objects is not None else [],
    )


def objects_from_messages(objects: Object3DArray, points: LabelledPointArray | None) -> list[Object3D]:
    """The node's 3D objects of one frame as measurements (those with num_points 0 measured nothing). The
    node fits each normal at its instance's labelled point, so that is the normal's pixel; an object without
    one gets (-1, -1), off the image, where no normal truth is looked up."""
    pixels = {p.instance_id: (int(p.u), int(p.v)) for p in (points.points if points is not None else [])}
    out = []
    for o in objects.objects:
        box = None
        size = (o.box_size.x, o.box_size.y, o.box_size.z)
        if o.num_points and any(size):  # the node sends a zero-size box when it fitted none
            pose = o.box_pose
            box = OrientedBox(
                (pose.position.x, pose.position.y, pose.position.z),
                (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w),
                size,
            )
        out.append(
            Object3D(
                instance_id=int(o.instance_id),
                num_points=int(o.num_points),
                centroid=(o.centroid.x, o.centroid.y, o.centroid.z) if o.num_points else None,
                box=box,
                normal_pixel=pixels.get(o.instance_id, (-1, -1)),
                normal=(o.normal.x, o.normal.y, o.normal.z) if o.normal_valid else None,
                points=None,
            )
        )
    return out
