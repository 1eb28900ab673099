"""One frame's results as the node's messages: perception.FrameResult -> what the topics publish and the
segment service returns."""

from __future__ import annotations

from dataclasses import dataclass

from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from pmp_ros.geometry import PointEstimate
from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.model.inference import Prediction
from pmp_ros.objects3d import stack_points
from pmp_ros.perception.frame import FrameResult
from pmp_ros.ros import messages
from pmp_ros_msgs.msg import LabelledPointArray, Object3DArray, SegmentationResult


@dataclass
class FrameOutputs:
    """One frame's results for one instruction: what the topics publish and the segment service returns."""

    result: SegmentationResult
    points: LabelledPointArray
    objects: Object3DArray
    prediction: Prediction
    estimates: list[PointEstimate]  # the labelled points (overlay and markers draw them)
    cloud: PointCloud2 | None = None

    @classmethod
    def of(
        cls, header: Header, instruction: str, parsed: ParsedInstruction, frame: FrameResult, cloud: bool
    ) -> FrameOutputs:
        """The messages of a frame's result (header: the camera image's); instruction: the text as received
        ("" for a structured one); cloud: also the objects' point cloud (the result measured it)."""
        published, track_ids = frame.prediction, frame.track_ids
        return cls(
            result=messages.segmentation_result(
                header, instruction, parsed, frame.plan.targets, frame.resolution.note, published, track_ids
            ),
            points=messages.labelled_points(header, instruction, published, frame.points, track_ids),
            objects=messages.objects_3d(header, instruction, published, frame.objects, track_ids),
            prediction=published,
            estimates=frame.points,
            cloud=messages.object_cloud(header, stack_points(frame.objects or [])) if cloud else None,
        )
