"""The node's results as vision_msgs, the messages ROS perception stacks consume (issue #25 item 6), made from
the node's own messages of a frame so that anything holding those (a bag, a client) can convert too.

- Detection2DArray, from a SegmentationResult: per instance a Detection2D with its box (BoundingBox2D: the
  ROI's centre and size in pixels, continuous coordinates: a box of pixels x0..x1 has its centre at
  (x0 + x1 + 1) / 2 and size x1 - x0 + 1), one hypothesis (class_id the instance's label, score its score),
  and the instance's track id as `id` (its decimal text; "" for an untracked instance, track id 0: an
  instance id names nothing across frames, and vision_msgs allows an empty id).
- Detection3DArray, from an Object3DArray (with depth): per object that has points a Detection3D with its
  oriented box (BoundingBox3D: the box's pose and size, metres, the camera's optical frame), one hypothesis
  whose pose is the object's centroid, and the same id. An object without points (no valid depth on it) has
  no 3D box and no Detection3D.
"""

from __future__ import annotations

from geometry_msgs.msg import Pose, PoseWithCovariance
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
)

from pmp_ros_msgs.msg import Object3DArray, SegmentationResult


def detection_id(track_id: int) -> str:
    """A Detection's id for an instance with this track id: its text, "" when not tracked (0)."""
    return str(track_id) if track_id else ""


def _hypothesis(label: str, score: float, pose: Pose | None = None) -> ObjectHypothesisWithPose:
    hypothesis = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=label, score=float(score)))
    hypothesis.pose = PoseWithCovariance(pose=pose if pose is not None else Pose())
    hypothesis.pose.pose.orientation.w = 1.0
    return hypothesis


def detections_2d(result: SegmentationResult) -> Detection2DArray:
    """One Detection2D per instance of the result, in its order; the result's header."""
    detections = []
    for instance in result.instances:
        roi = instance.roi
        bbox = BoundingBox2D(size_x=float(roi.width), size_y=float(roi.height))
        bbox.center.position.x = roi.x_offset + roi.width / 2.0
        bbox.center.position.y = roi.y_offset + roi.height / 2.0
        detections.append(
            Detection2D(
                header=result.header,
                results=[_hypothesis(instance.label, instance.score)],
                bbox=bbox,
                id=detection_id(instance.track_id),
            )
        )
    return Detection2DArray(header=result.header, detections=detections)


def detections_3d(objects: Object3DArray) -> Detection3DArray:
    """One Detection3D per object with points, in their order; the array's header."""
    detections = []
    for item in objects.objects:
        if not item.num_points:
            continue
        centroid = Pose()
        centroid.position = item.centroid
        detections.append(
            Detection3D(
                header=objects.header,
                results=[_hypothesis(item.label, item.score, centroid)],
                bbox=BoundingBox3D(center=item.box_pose, size=item.box_size),
                id=detection_id(item.track_id),
            )
        )
    return Detection3DArray(header=objects.header, detections=detections)
