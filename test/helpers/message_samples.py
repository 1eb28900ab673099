"""One sample of each pmp_ros_msgs message, every field set to a non-default value.

Used by the publisher process and by the receiving test, so both sides build the same values.
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from pmp_ros_msgs.msg import (
    GroundTruth,
    GroundTruthObject,
    Instance,
    LabelledPoint,
    LabelledPointArray,
    SegmentationResult,
)

SAMPLE_TOPICS = {
    "Instance": "samples/instance",
    "SegmentationResult": "samples/segmentation",
    "LabelledPoint": "samples/point",
    "LabelledPointArray": "samples/points",
    "GroundTruthObject": "samples/gt_object",
    "GroundTruth": "samples/ground_truth",
}
MESSAGE_TYPES = {
    cls.__name__: cls
    for cls in (Instance, SegmentationResult, LabelledPoint, LabelledPointArray, GroundTruthObject, GroundTruth)
}


def _header() -> Header:
    return Header(stamp=Time(sec=1_700_000_123, nanosec=456_789), frame_id="camera_color_optical_frame")


def _mono16(height: int, width: int) -> Image:
    pixels = (np.arange(height * width, dtype=np.uint16) % 7).reshape(height, width)
    return Image(
        header=_header(),
        height=height,
        width=width,
        encoding="mono16",
        is_bigendian=0,
        step=2 * width,
        data=pixels.tobytes(),
    )


def _instance(i: int) -> Instance:
    return Instance(
        id=i,
        label=f"red star {i}",
        prompt_index=i - 1,
        score=0.25 + 0.125 * i,
        roi=RegionOfInterest(x_offset=3 * i, y_offset=5, height=7, width=11, do_rectify=True),
        area=1234 + i,
    )


def _point(i: int) -> LabelledPoint:
    return LabelledPoint(
        instance_id=i,
        label="green ring",
        score=0.875,
        u=17 + i,
        v=29,
        position=Point(x=0.125, y=-0.5, z=1.75 + i),
        position_valid=bool(i % 2),
    )


def _gt_object(i: int) -> GroundTruthObject:
    return GroundTruthObject(
        id=i,
        label="blue cross",
        centre=Point(x=0.1 * i, y=0.2, z=0.9),
        area=77 * i,
        occlusion=0.25,
        visible_centre=Point(x=0.1 * i, y=0.25, z=0.875),
        shape="cross",
        radius=0.03,
        height=0.0125,
        pose=Pose(position=Point(x=0.1 * i, y=0.2, z=0.95), orientation=Quaternion(x=0.5, y=0.5, z=-0.5, w=0.5)),
    )


def samples() -> dict[str, object]:
    return {
        "Instance": _instance(1),
        "SegmentationResult": SegmentationResult(
            header=_header(),
            instruction="pick up the red star and the green ring",
            prompts=["red star", "green ring"],
            label_image=_mono16(6, 10),
            instances=[_instance(1), _instance(2)],
        ),
        "LabelledPoint": _point(1),
        "LabelledPointArray": LabelledPointArray(
            header=_header(), instruction="go to the green ring", points=[_point(1), _point(2), _point(3)]
        ),
        "GroundTruthObject": _gt_object(4),
        "GroundTruth": GroundTruth(
            header=_header(),
            instance_image=_mono16(4, 5),
            objects=[_gt_object(1), _gt_object(2)],
            instruction="find every blue cross",
            target_ids=[1, 2],
        ),
    }


def message_to_dict(msg) -> object:
    """Every field of a ROS message, recursively, as plain Python values (for field-by-field equality)."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: message_to_dict(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)):
        return [message_to_dict(item) for item in msg]
    if isinstance(msg, (array.array, np.ndarray)):
        return bytes(msg) if getattr(msg, "typecode", "") == "B" else list(msg)
    if isinstance(msg, bytes):
        return msg
    return msg


def padded_image_message(pixels: np.ndarray, encoding: str, pad_bytes: int, bigendian: bool = False) -> Image:
    """An Image of `pixels` whose rows carry pad_bytes of junk after the pixels (step > width x pixel size),
    as some camera drivers send them."""
    rows = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).reshape(pixels.shape[0], -1)
    data = np.concatenate([rows.view(np.uint8), np.full((rows.shape[0], pad_bytes), 0xAB, np.uint8)], axis=1)
    return Image(
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=data.shape[1],
        data=data.tobytes(),
    )
