"""The node's (and the demo's) result messages of one frame -> a viz.live_view.LiveFrame, and the live view
the node's `foxglove_port` parameter starts (0 = none).

The node calls, once per answered frame (only when a view is open):

    view.publish(live_frame(rgb, outputs.result, outputs.points, outputs.objects, outputs.cloud, status))

with the camera image it segmented, its FrameOutputs' messages and its camera's latest DiagnosticStatus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import PointCloud2, PointField

from pmp_ros.objects3d import ObjectCloud
from pmp_ros.ros.image_conversion import image_to_array
from pmp_ros.viz.live_view import LiveFrame, LiveObject, LiveView
from pmp_ros.viz.overlay import Annotation
from pmp_ros_msgs.msg import LabelledPointArray, Object3DArray, SegmentationResult

_LEVELS = {
    DiagnosticStatus.OK: "OK",
    DiagnosticStatus.WARN: "WARN",
    DiagnosticStatus.ERROR: "ERROR",
    DiagnosticStatus.STALE: "STALE",
}


def open_live_view(port: int, host: str = "127.0.0.1", mcap_path: Path | None = None) -> LiveView | None:
    """The node's live view: None for port 0 (off), else a LiveView serving on host:port (and recording to
    mcap_path when given). Raises RuntimeError when the port is taken (the node reports it and goes on
    without a view)."""
    if port == 0 and mcap_path is None:
        return None
    return LiveView(port=port or None, mcap_path=mcap_path, host=host, name="pmp_segmenter")


def live_frame(
    rgb: np.ndarray,
    result: SegmentationResult,
    points: LabelledPointArray | None = None,
    objects: Object3DArray | None = None,
    cloud: PointCloud2 | ObjectCloud | None = None,
    status: DiagnosticStatus | None = None,
) -> LiveFrame:
    """rgb uint8 [H,W,3] (the image the result answers) and the node's messages of that frame (points,
    objects, cloud None: not published; status: the camera's latest diagnostics) -> LiveFrame."""
    label_image = np.asarray(image_to_array(result.label_image), dtype=np.uint16)
    pixels = {p.instance_id: (int(p.u), int(p.v)) for p in (points.points if points is not None else [])}
    positions = {
        p.instance_id: (p.position.x, p.position.y, p.position.z)
        for p in (points.points if points is not None else [])
        if p.position_valid
    }
    annotations = [
        Annotation(int(i.id), i.label, float(i.score), int(i.track_id), pixels.get(i.id)) for i in result.instances
    ]
    live_objects = []
    for o in objects.objects if objects is not None else []:
        size = (o.box_size.x, o.box_size.y, o.box_size.z)
        box = None
        if o.num_points and any(size):  # the node sends a zero-size box when it fitted none
            p, q = o.box_pose.position, o.box_pose.orientation
            box = ((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), size)
        live_objects.append(
            LiveObject(
                instance_id=int(o.instance_id),
                label=o.label,
                score=float(o.score),
                track_id=int(o.track_id),
                centroid=(o.centroid.x, o.centroid.y, o.centroid.z) if o.num_points else None,
                box=box,
                normal=(o.normal.x, o.normal.y, o.normal.z) if o.normal_valid else None,
                normal_origin=positions.get(o.instance_id),
            )
        )
    header = result.header
    return LiveFrame(
        stamp_ns=header.stamp.sec * 1_000_000_000 + header.stamp.nanosec,
        frame_id=header.frame_id,
        rgb=rgb,
        label_image=label_image,
        annotations=annotations,
        objects=live_objects,
        cloud=cloud_points(cloud) if isinstance(cloud, PointCloud2) else cloud,
        instruction=result.instruction,
        resolution=result.resolution,
        diagnostics_level=_LEVELS.get(status.level, "UNKNOWN") if status is not None else "OK",
        diagnostics_message=status.message if status is not None else "",
        diagnostics={kv.key: kv.value for kv in status.values} if status is not None else {},
    )


def cloud_points(msg: PointCloud2) -> ObjectCloud:
    """The node's object_points cloud (messages.object_cloud's layout: x y z float32, rgb 0x00RRGGBB in a
    float32 field as RViz reads it, instance_id uint16) back as arrays. ValueError for another layout."""
    fields = {f.name: f.datatype for f in msg.fields}
    expected = {
        "x": (PointField.FLOAT32,),
        "y": (PointField.FLOAT32,),
        "z": (PointField.FLOAT32,),
        "rgb": (PointField.FLOAT32, PointField.UINT32),
        "instance_id": (PointField.UINT16,),
    }
    wrong = [name for name, types in expected.items() if fields.get(name) not in types]
    if wrong:
        raise ValueError(f"not an object cloud: field(s) {wrong} missing or of another type ({fields})")
    offsets = {f.name: f.offset for f in msg.fields}
    formats = {"x": "<f4", "y": "<f4", "z": "<f4", "rgb": "<u4", "instance_id": "<u2"}
    dtype = np.dtype(
        {
            "names": list(formats),
            "formats": list(formats.values()),
            "offsets": [offsets[name] for name in formats],
            "itemsize": msg.point_step,
        }
    )
    points = np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)
    rgb = points["rgb"]
    return ObjectCloud(
        xyz=np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float32),
        rgb=np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=1).astype(np.uint8),
        instance_id=points["instance_id"].astype(np.uint16),
    )
