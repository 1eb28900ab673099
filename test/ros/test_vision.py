"""vision_msgs from the node's messages (pmp_ros/ros/vision.py): boxes, class ids, scores and track ids of
Detection2DArray, and Detection3DArray's oriented boxes and centroids, built from hand-made node messages."""

from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from pmp_ros.ros.vision import detections_2d, detections_3d
from pmp_ros_msgs.msg import Instance, Object3D, Object3DArray, SegmentationResult

HEADER = Header(frame_id="camera_optical")
HEADER.stamp.sec = 42


def test_each_instance_is_a_detection_with_its_box_label_score_and_track_id():
    result = SegmentationResult(
        header=HEADER,
        instances=[
            Instance(
                id=1,
                label="red mug",
                score=0.8,
                track_id=7,
                roi=RegionOfInterest(x_offset=10, y_offset=20, width=4, height=6),
            ),
            Instance(
                id=2,
                label="knife",
                score=0.4,
                track_id=0,
                roi=RegionOfInterest(x_offset=0, y_offset=0, width=1, height=1),
            ),
        ],
    )
    array = detections_2d(result)
    assert array.header == HEADER and len(array.detections) == 2
    mug, knife = array.detections
    assert mug.header == HEADER and mug.id == "7" and knife.id == ""  # untracked: no id across frames
    assert (mug.bbox.center.position.x, mug.bbox.center.position.y) == (12.0, 23.0)  # pixels 10..13, 20..25
    assert (mug.bbox.size_x, mug.bbox.size_y) == (4.0, 6.0)
    (hypothesis,) = mug.results
    assert hypothesis.hypothesis.class_id == "red mug" and abs(hypothesis.hypothesis.score - 0.8) < 1e-6
    assert (knife.bbox.center.position.x, knife.bbox.size_x) == (0.5, 1.0)


def test_objects_with_points_are_3d_detections_with_their_box_and_centroid():
    pose = Pose(position=Point(x=0.1, y=0.2, z=1.5), orientation=Quaternion(x=0.0, y=0.0, z=0.7071, w=0.7071))
    objects = Object3DArray(
        header=HEADER,
        objects=[
            Object3D(
                instance_id=1,
                track_id=3,
                label="bowl",
                score=0.9,
                num_points=120,
                centroid=Point(x=0.1, y=0.2, z=1.52),
                box_pose=pose,
                box_size=Vector3(x=0.1, y=0.2, z=0.05),
            ),
            Object3D(instance_id=2, track_id=4, label="cup", score=0.5, num_points=0),  # no depth on it
        ],
    )
    array = detections_3d(objects)
    assert array.header == HEADER and len(array.detections) == 1
    (bowl,) = array.detections
    assert bowl.id == "3" and bowl.bbox.center == pose and bowl.bbox.size == Vector3(x=0.1, y=0.2, z=0.05)
    (hypothesis,) = bowl.results
    assert hypothesis.hypothesis.class_id == "bowl" and abs(hypothesis.hypothesis.score - 0.9) < 1e-6
    assert hypothesis.pose.pose.position == Point(x=0.1, y=0.2, z=1.52) and hypothesis.pose.pose.orientation.w == 1.0
