"""Building the node's output messages from a Prediction (model/inference.py) and point estimates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from pmp_ros.geometry import PointEstimate
from pmp_ros.language.limits import DEFAULT_MAX_LENGTH
from pmp_ros.language.parse import ParsedInstruction, structured_instruction
from pmp_ros.model.inference import Prediction
from pmp_ros.objects3d import Object3D as Measured3D
from pmp_ros.objects3d import ObjectCloud
from pmp_ros.ros.image_conversion import array_to_image, label_image_to_msg
from pmp_ros.viz.overlay import Annotation, draw_overlay, instance_colour
from pmp_ros_msgs.msg import (
    Instance,
    Instruction,
    LabelledPoint,
    LabelledPointArray,
    Object3D,
    Object3DArray,
    SegmentationResult,
)

MARKER_NAMESPACE = "pmp_targets"
MARKER_DIAMETER_M = 0.03


def instruction_message(parsed: ParsedInstruction) -> Instruction:
    """The structured form of a parsed instruction ("" / 0 for no order, relation or reference)."""
    return Instruction(
        targets=list(parsed.targets),
        every=list(parsed.every),
        alternatives=parsed.alternatives,
        everything=parsed.everything,
        excluded=list(parsed.excluded),
        order=parsed.order or "",
        ordinal=parsed.ordinal or 0,
        relation=parsed.relation or "",
        reference=parsed.reference or "",
    )


def parsed_from_instruction(msg: Instruction, max_length: int = DEFAULT_MAX_LENGTH) -> ParsedInstruction:
    """The ParsedInstruction of a structured message; InstructionParseError when its fields disagree or break
    the limits text meets (max_length: the node's max_instruction_length; language/limits.py)."""
    return structured_instruction(
        targets=list(msg.targets),
        every=list(msg.every),
        alternatives=msg.alternatives,
        everything=msg.everything,
        excluded=list(msg.excluded),
        order=msg.order,
        ordinal=msg.ordinal,
        relation=msg.relation,
        reference=msg.reference,
        max_length=max_length,
    )


def segmentation_result(
    header: Header,
    instruction: str,
    understood: ParsedInstruction,
    prompts: Sequence[str],
    resolution: str,
    prediction: Prediction,
    track_ids: Mapping[int, int] | None = None,
) -> SegmentationResult:
    """SegmentationResult for one frame; header is the input image's (stamp and frame identify it).
    prompts: the target prompts (Instance.prompt_index points into them); resolution: how the instances
    were chosen; track_ids: instance id -> track id (absent or None: 0, not tracked)."""
    track_ids = track_ids or {}
    instances = [
        Instance(
            id=i.id,
            label=i.label,
            prompt_index=i.prompt_index,
            score=float(i.score),
            roi=RegionOfInterest(
                x_offset=i.box[0], y_offset=i.box[1], width=i.box[2] - i.box[0] + 1, height=i.box[3] - i.box[1] + 1
            ),
            area=i.area,
            track_id=track_ids.get(i.id, 0),
        )
        for i in prediction.instances
    ]
    return SegmentationResult(
        header=header,
        instruction=instruction,
        prompts=list(prompts),
        understood=instruction_message(understood),
        resolution=resolution,
        label_image=label_image_to_msg(prediction.label_image, header),
        instances=instances,
    )


def labelled_points(
    header: Header,
    instruction: str,
    prediction: Prediction,
    points: Sequence[PointEstimate],
    track_ids: Mapping[int, int] | None = None,
) -> LabelledPointArray:
    """One LabelledPoint per instance (points[i] belongs to prediction.instances[i]); track_ids as
    segmentation_result's."""
    track_ids = track_ids or {}
    out = []
    for instance, point in zip(prediction.instances, points, strict=True):
        position = (
            Point() if point.position is None else Point(x=point.position[0], y=point.position[1], z=point.position[2])
        )
        out.append(
            LabelledPoint(
                instance_id=instance.id,
                track_id=track_ids.get(instance.id, 0),
                label=instance.label,
                score=float(instance.score),
                u=point.u,
                v=point.v,
                position=position,
                position_valid=point.position is not None,
            )
        )
    return LabelledPointArray(header=header, instruction=instruction, points=out)


def objects_3d(
    header: Header,
    instruction: str,
    prediction: Prediction,
    measured: Sequence[Measured3D] | None,
    track_ids: Mapping[int, int] | None = None,
) -> Object3DArray:
    """One Object3D per instance (measured[i] belongs to prediction.instances[i]); measured None (no depth
    or camera info for this frame): entries with num_points 0 and no geometry; track_ids as
    segmentation_result's."""
    track_ids = track_ids or {}
    out = []
    for index, instance in enumerate(prediction.instances):
        item = Object3D(
            instance_id=instance.id,
            track_id=track_ids.get(instance.id, 0),
            label=instance.label,
            score=float(instance.score),
        )
        found = measured[index] if measured is not None else None
        if found is not None and found.num_points:
            item.num_points = found.num_points
            item.centroid = Point(x=found.centroid[0], y=found.centroid[1], z=found.centroid[2])
        if found is not None and found.box is not None:
            (cx, cy, cz), (qx, qy, qz, qw) = found.box.center, found.box.quaternion
            item.box_pose = Pose(position=Point(x=cx, y=cy, z=cz), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
            item.box_size = Vector3(x=found.box.size[0], y=found.box.size[1], z=found.box.size[2])
        else:
            item.box_pose.orientation.w = 1.0
        if found is not None and found.normal is not None:
            item.normal = Vector3(x=found.normal[0], y=found.normal[1], z=found.normal[2])
            item.normal_valid = True
        out.append(item)
    return Object3DArray(header=header, instruction=instruction, objects=out)


# PointCloud2 layout of object_points: x y z (float32), rgb (float32 holding 0x00RRGGBB, as RViz reads it),
# instance_id (uint16), 2 bytes of padding.
_CLOUD_DTYPE = np.dtype(
    {"names": ["x", "y", "z", "rgb", "instance_id"], "formats": ["<f4", "<f4", "<f4", "<u4", "<u2"], "itemsize": 20}
)
_CLOUD_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1),
    PointField(name="instance_id", offset=16, datatype=PointField.UINT16, count=1),
]


def object_cloud(header: Header, cloud: ObjectCloud) -> PointCloud2:
    """The objects' points as one unorganised PointCloud2 (fields: _CLOUD_FIELDS)."""
    points = np.zeros(len(cloud.xyz), _CLOUD_DTYPE)
    points["x"], points["y"], points["z"] = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    rgb = cloud.rgb.astype(np.uint32)
    points["rgb"] = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    points["instance_id"] = cloud.instance_id
    return PointCloud2(
        header=header,
        height=1,
        width=len(points),
        fields=_CLOUD_FIELDS,
        is_bigendian=False,
        point_step=_CLOUD_DTYPE.itemsize,
        row_step=_CLOUD_DTYPE.itemsize * len(points),
        data=points.tobytes(),
        is_dense=True,
    )


def overlay_image(
    rgb: np.ndarray,
    prediction: Prediction,
    points: Sequence[PointEstimate],
    header: Header,
    track_ids: Mapping[int, int] | None = None,
    instruction: str | None = None,
    resolution: str | None = None,
) -> Image:
    """rgb8 image (viz/overlay.draw_overlay): the camera image undimmed, each instance's outline in its
    colour, "label score #track" in a box, its labelled point as a cross-hair; with instruction or
    resolution (the result's), a banner above saying what was asked and how it was resolved (the image is
    then taller by the banner). track_ids as segmentation_result's."""
    track_ids = track_ids or {}
    annotations = [
        Annotation(i.id, i.label, float(i.score), track_ids.get(i.id, 0), (p.u, p.v))
        for i, p in zip(prediction.instances, points, strict=True)
    ]
    canvas = draw_overlay(rgb, prediction.label_image, annotations, instruction, resolution)
    return array_to_image(canvas, "rgb8", header)


def label_image(header: Header, prediction: Prediction) -> Image:
    """The label image alone (mono16: 0 background, the instances' ids), for a topic of its own that tools
    colour themselves; the same image as SegmentationResult.label_image."""
    return label_image_to_msg(prediction.label_image, header)


def target_markers(header: Header, prediction: Prediction, points: Sequence[PointEstimate]) -> MarkerArray:
    """A sphere and a text label per instance with a valid 3D point; first a DELETEALL so markers of
    earlier frames never linger."""
    markers = [Marker(header=header, ns=MARKER_NAMESPACE, action=Marker.DELETEALL)]
    for instance, point in zip(prediction.instances, points, strict=True):
        if point.position is None:
            continue
        r, g, b = (c / 255.0 for c in instance_colour(instance.id))
        position = Point(x=point.position[0], y=point.position[1], z=point.position[2])
        sphere = Marker(header=header, ns=MARKER_NAMESPACE, id=2 * instance.id, type=Marker.SPHERE, action=Marker.ADD)
        sphere.pose.position = position
        sphere.pose.orientation.w = 1.0
        sphere.scale.x = sphere.scale.y = sphere.scale.z = MARKER_DIAMETER_M
        sphere.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        text = Marker(
            header=header,
            ns=MARKER_NAMESPACE,
            id=2 * instance.id + 1,
            type=Marker.TEXT_VIEW_FACING,
            action=Marker.ADD,
            text=f"{instance.label} {instance.score:.2f}",
        )
        text.pose.position = Point(x=position.x, y=position.y - 2 * MARKER_DIAMETER_M, z=position.z)
        text.pose.orientation.w = 1.0
        text.scale.z = MARKER_DIAMETER_M
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers += [sphere, text]
    return MarkerArray(markers=markers)


def diagnostics(
    stamp, name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, object]
) -> DiagnosticArray:
    """A DiagnosticArray with one status; level is DiagnosticStatus.OK / WARN / ERROR (bytes)."""
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
