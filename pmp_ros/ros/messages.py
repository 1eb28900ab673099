"""Building the node's output messages from a Prediction (model/inference.py) and point estimates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from pmp_ros.geometry import PointEstimate
from pmp_ros.language.parse import ParsedInstruction, structured_instruction
from pmp_ros.model.inference import Prediction
from pmp_ros.ros.image_conversion import array_to_image, label_image_to_msg
from pmp_ros_msgs.msg import Instance, Instruction, LabelledPoint, LabelledPointArray, SegmentationResult

OVERLAY_ALPHA = 0.5
MARKER_NAMESPACE = "pmp_targets"
MARKER_DIAMETER_M = 0.03


def instance_colour(instance_id: int) -> tuple[int, int, int]:
    """A stable, well-spread RGB colour per id (golden-ratio hue steps)."""
    hue = int((instance_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 200, 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


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


def parsed_from_instruction(msg: Instruction) -> ParsedInstruction:
    """The ParsedInstruction of a structured message; InstructionParseError when its fields disagree."""
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
    )


def segmentation_result(
    header: Header,
    instruction: str,
    understood: ParsedInstruction,
    prompts: Sequence[str],
    resolution: str,
    prediction: Prediction,
) -> SegmentationResult:
    """SegmentationResult for one frame; header is the input image's (stamp and frame identify it).
    prompts: the target prompts (Instance.prompt_index points into them); resolution: how the instances
    were chosen."""
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
    header: Header, instruction: str, prediction: Prediction, points: Sequence[PointEstimate]
) -> LabelledPointArray:
    """One LabelledPoint per instance (points[i] belongs to prediction.instances[i])."""
    out = []
    for instance, point in zip(prediction.instances, points, strict=True):
        position = (
            Point() if point.position is None else Point(x=point.position[0], y=point.position[1], z=point.position[2])
        )
        out.append(
            LabelledPoint(
                instance_id=instance.id,
                label=instance.label,
                score=float(instance.score),
                u=point.u,
                v=point.v,
                position=position,
                position_valid=point.position is not None,
            )
        )
    return LabelledPointArray(header=header, instruction=instruction, points=out)


def overlay_image(rgb: np.ndarray, prediction: Prediction, points: Sequence[PointEstimate], header: Header) -> Image:
    """rgb8 image: instance masks blended in their colours, "label score" drawn at each interior point."""
    palette = np.zeros((int(prediction.label_image.max()) + 1, 3), np.float32)
    for instance in prediction.instances:
        palette[instance.id] = instance_colour(instance.id)
    painted = prediction.label_image > 0
    canvas = rgb.astype(np.float32)
    canvas[painted] = (1 - OVERLAY_ALPHA) * canvas[painted] + OVERLAY_ALPHA * palette[prediction.label_image[painted]]
    canvas = np.ascontiguousarray(canvas.astype(np.uint8))
    for instance, point in zip(prediction.instances, points, strict=True):
        cv2.circle(canvas, (point.u, point.v), 3, (255, 255, 255), -1)
        cv2.putText(
            canvas,
            f"{instance.label} {instance.score:.2f}",
            (point.u + 5, point.v),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return array_to_image(canvas, "rgb8", header)


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
