"""A camera's outputs that are built only while someone subscribes: the overlay picture, the markers, the label
image and the vision_msgs detections (pmp_ros/ros/vision.py). Building them costs (drawing, encoding), so a
frame's publications include each only when its topic has a subscriber.

    extras = OnDemandOutputs(node, camera_topic, use_depth)       # at configure
    publications += extras.publications(header, rgb, result, objects, prediction, estimates)
    extras.destroy()                                               # at cleanup
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from pmp_ros.geometry import PointEstimate
from pmp_ros.model.inference import Prediction
from pmp_ros.ros import interface, messages, vision
from pmp_ros_msgs.msg import Object3DArray, SegmentationResult

# Queue depth of these publishers: a viewer that falls behind gets the newest, not a backlog.
DEPTH = 2


class OnDemandOutputs:
    """One camera's on-demand publishers (the detections_3d one with use_depth only)."""

    def __init__(self, node, topic: Callable[[str], str], use_depth: bool) -> None:
        self._node = node
        self.overlay = node.create_publisher(Image, topic(interface.OVERLAY_TOPIC), DEPTH)
        self.markers = node.create_publisher(MarkerArray, topic(interface.MARKERS_TOPIC), DEPTH)
        self.label_image = node.create_publisher(Image, topic(interface.LABEL_IMAGE_TOPIC), DEPTH)
        self.detections = node.create_publisher(Detection2DArray, topic(interface.DETECTIONS_TOPIC), DEPTH)
        self.detections_3d = (
            node.create_publisher(Detection3DArray, topic(interface.DETECTIONS_3D_TOPIC), DEPTH) if use_depth else None
        )

    def publishers(self) -> list:
        return [p for p in (self.overlay, self.markers, self.label_image, self.detections, self.detections_3d) if p]

    def publications(
        self,
        header: Header,
        rgb: np.ndarray,
        result: SegmentationResult,
        objects: Object3DArray | None,
        prediction: Prediction,
        estimates: Sequence[PointEstimate],
    ) -> list[tuple[object, object]]:
        """(publisher, message) of each output with a subscriber for one frame: rgb uint8 [H,W,3] the image,
        result and objects (None without depth) its node messages, prediction and estimates what they were
        made from."""
        found = []
        if self.overlay.get_subscription_count():
            found.append((self.overlay, messages.overlay_image(rgb, prediction, estimates, header)))
        if self.markers.get_subscription_count():
            found.append((self.markers, messages.target_markers(header, prediction, estimates)))
        if self.label_image.get_subscription_count():
            found.append((self.label_image, messages.label_image(header, prediction)))
        if self.detections.get_subscription_count():
            found.append((self.detections, vision.detections_2d(result)))
        if self.detections_3d is not None and objects is not None and self.detections_3d.get_subscription_count():
            found.append((self.detections_3d, vision.detections_3d(objects)))
        return found

    def destroy(self) -> None:
        for publisher in self.publishers():
            self._node.destroy_publisher(publisher)
