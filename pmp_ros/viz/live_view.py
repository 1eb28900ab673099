"""The live view: one frame's results streamed to Foxglove (foxglove-sdk, no ROS install needed) over a
WebSocket server, and/or recorded to an .mcap file that Foxglove opens.

    with LiveView(port=8765, mcap_path=Path("run.mcap")) as view:   # port 0: any free port
        view.publish(frame)                                            # a LiveFrame per answered image

Channels (CHANNELS; config/foxglove_layout.json opens every one, see foxglove_layout):
    /pmp/image          foxglove.CompressedImage  the camera image (JPEG)
    /pmp/overlay        foxglove.CompressedImage  the overlay picture (viz/overlay.py: outlines, captions, banner)
    /pmp/annotations    foxglove.ImageAnnotations per instance its mask outline (filled, its colour), caption
                                                  "label score #track" and the labelled point's cross-hair
    /pmp/label_image    foxglove.RawImage         mono16 label image (0 background, instance ids)
    /pmp/objects        foxglove.SceneUpdate      per 3D object its box, surface normal arrow and caption
    /pmp/object_points  foxglove.PointCloud       the objects' points: x y z, red green blue alpha, instance_id
    /pmp/result         JSON                      instruction, its resolution, the instances
    /pmp/diagnostics    JSON                      the diagnostics' level, message and values
    /pmp/log            foxglove.Log              a line each time the instruction or its resolution changes

Each LiveView has its own foxglove Context, so two views (or a view and another foxglove user in the same
process) never see each other's channels. ROS-free: the node and the demo build a LiveFrame from their
results (pmp_ros/ros/live_view.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import foxglove
import numpy as np
from foxglove import channels as fc
from foxglove import messages as fm

from pmp_ros.viz.overlay import Annotation, draw_overlay, instance_colour, mask_outlines

Vector3 = tuple[float, float, float]

CHANNELS: dict[str, str] = {
    "image": "/pmp/image",
    "overlay": "/pmp/overlay",
    "annotations": "/pmp/annotations",
    "label_image": "/pmp/label_image",
    "objects": "/pmp/objects",
    "object_points": "/pmp/object_points",
    "result": "/pmp/result",
    "diagnostics": "/pmp/diagnostics",
    "log": "/pmp/log",
}
DEFAULT_PORT = 8765  # Foxglove's default WebSocket address is ws://localhost:8765
JPEG_QUALITY = 90
FILL_ALPHA = 0.25  # the annotations' mask fill: the image stays readable under it
BOX_ALPHA = 0.3
NORMAL_ARROW_M = 0.05
LOG_NAME = "pmp_ros"

_RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string"},
        "resolution": {"type": "string"},
        "instances": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "label": {"type": "string"},
                    "score": {"type": "number"},
                    "track_id": {"type": "integer"},
                    "u": {"type": ["integer", "null"]},
                    "v": {"type": ["integer", "null"]},
                },
            },
        },
    },
}
_DIAGNOSTICS_SCHEMA = {
    "type": "object",
    "properties": {
        "level": {"type": "string"},
        "message": {"type": "string"},
        "values": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


class PointSet(Protocol):
    """A coloured point cloud with an instance per point (objects3d.ObjectCloud is one): xyz float32 [N,3]
    metres, rgb uint8 [N,3], instance_id uint16 [N]."""

    xyz: np.ndarray
    rgb: np.ndarray
    instance_id: np.ndarray


@dataclass(frozen=True)
class LiveObject:
    """One instance in 3D, camera frame, metres: centroid; box (center, quaternion x y z w, size) or None;
    normal (unit) at normal_origin (the labelled point's 3D position), either None when not measured."""

    instance_id: int
    label: str
    score: float
    track_id: int = 0
    centroid: Vector3 | None = None
    box: tuple[Vector3, tuple[float, float, float, float], Vector3] | None = None
    normal: Vector3 | None = None
    normal_origin: Vector3 | None = None


@dataclass(frozen=True)
class LiveFrame:
    """One answered image: stamp_ns (the image's stamp), frame_id (its camera frame, the 3D channels'
    frame), rgb uint8 [H,W,3], label_image uint16 [H,W] (the annotations' ids), the instances, their 3D
    objects and points, the instruction and how it was resolved, and diagnostics (level "OK" / "WARN" /
    "ERROR", a message, values)."""

    stamp_ns: int
    frame_id: str
    rgb: np.ndarray
    label_image: np.ndarray
    annotations: Sequence[Annotation] = ()
    objects: Sequence[LiveObject] = ()
    cloud: PointSet | None = None
    instruction: str = ""
    resolution: str = ""
    diagnostics_level: str = "OK"
    diagnostics_message: str = ""
    diagnostics: Mapping[str, object] = field(default_factory=dict)


class LiveView:
    """The channels of CHANNELS on a Foxglove WebSocket server (port: None = no server, 0 = any free
    port, read it back from .port) and/or in an .mcap file (mcap_path, overwritten). host: the address the
    server listens on ("0.0.0.0" to be reached from another machine). Raises ValueError when neither is
    asked for, RuntimeError (foxglove's) when the port is taken."""

    def __init__(
        self,
        port: int | None = None,
        mcap_path: Path | None = None,
        host: str = "127.0.0.1",
        name: str = "pmp_ros",
    ):
        if port is None and mcap_path is None:
            raise ValueError("LiveView needs a port, an mcap_path or both")
        self.context = foxglove.Context()
        self._channels = {
            "image": fc.CompressedImageChannel(CHANNELS["image"], context=self.context),
            "overlay": fc.CompressedImageChannel(CHANNELS["overlay"], context=self.context),
            "annotations": fc.ImageAnnotationsChannel(CHANNELS["annotations"], context=self.context),
            "label_image": fc.RawImageChannel(CHANNELS["label_image"], context=self.context),
            "objects": fc.SceneUpdateChannel(CHANNELS["objects"], context=self.context),
            "object_points": fc.PointCloudChannel(CHANNELS["object_points"], context=self.context),
            "result": foxglove.Channel(CHANNELS["result"], schema=_RESULT_SCHEMA, context=self.context),
            "diagnostics": foxglove.Channel(CHANNELS["diagnostics"], schema=_DIAGNOSTICS_SCHEMA, context=self.context),
            "log": fc.LogChannel(CHANNELS["log"], context=self.context),
        }
        self._mcap = None
        self._server = None
        if mcap_path is not None:
            self._mcap = foxglove.open_mcap(Path(mcap_path), allow_overwrite=True, context=self.context)
        if port is not None:
            try:
                self._server = foxglove.start_server(name=name, host=host, port=port, context=self.context)
            except Exception:
                self.close()
                raise
        self._last_said: tuple[str, str] | None = None

    @property
    def port(self) -> int | None:
        """The server's port (None without a server)."""
        return None if self._server is None else self._server.port

    def subscribed_topics(self) -> set[str]:
        """The channels' topics that a client (or the .mcap file) takes now."""
        return {channel.topic() for channel in self._channels.values() if channel.has_sinks()}

    def publish(self, frame: LiveFrame) -> None:
        """Log this frame's message on every channel someone takes (nothing is encoded for the others),
        stamped with the image's stamp."""
        stamp, ns = _timestamp(frame.stamp_ns), frame.stamp_ns
        builders = {
            "image": lambda: _jpeg(frame.rgb, frame.frame_id, stamp),
            "overlay": lambda: _jpeg(
                draw_overlay(frame.rgb, frame.label_image, frame.annotations, frame.instruction, frame.resolution),
                frame.frame_id,
                stamp,
            ),
            "annotations": lambda: image_annotations(frame, stamp),
            "label_image": lambda: _mono16(frame.label_image, frame.frame_id, stamp),
            "objects": lambda: scene_update(frame, stamp),
            "object_points": lambda: point_cloud(frame.cloud, frame.frame_id, stamp),
            "result": lambda: result_record(frame),
            "diagnostics": lambda: {
                "level": frame.diagnostics_level,
                "message": frame.diagnostics_message,
                "values": {key: str(value) for key, value in frame.diagnostics.items()},
            },
        }
        for name, build in builders.items():
            if self._channels[name].has_sinks():
                self._channels[name].log(build(), log_time=ns)
        said = (frame.instruction, frame.resolution)
        if said != self._last_said:
            self._last_said = said
            message = f"{frame.instruction}: {frame.resolution}" if frame.resolution else frame.instruction
            log = fm.Log(timestamp=stamp, level=fm.LogLevel.Info, message=message, name=LOG_NAME)
            self._channels["log"].log(log, log_time=ns)

    def close(self) -> None:
        """Stop the server and finish the .mcap file (its summary and index are written here)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._mcap is not None:
            self._mcap.close()
            self._mcap = None

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def result_record(frame: LiveFrame) -> dict:
    """The /pmp/result message (_RESULT_SCHEMA): instruction, resolution, and per instance its id, label,
    score, track id and labelled pixel."""
    return {
        "instruction": frame.instruction,
        "resolution": frame.resolution,
        "instances": [
            {
                "id": a.id,
                "label": a.label,
                "score": round(float(a.score), 4),
                "track_id": a.track_id,
                "u": None if a.point is None else int(a.point[0]),
                "v": None if a.point is None else int(a.point[1]),
            }
            for a in frame.annotations
        ],
    }


def image_annotations(frame: LiveFrame, stamp: fm.Timestamp) -> fm.ImageAnnotations:
    """Per annotation: each mask part's outline as a filled line loop in its colour, its caption at the
    mask's top-left corner, and a cross-hair (two line segments) on its labelled point."""
    points, texts = [], []
    for annotation in frame.annotations:
        r, g, b = (c / 255.0 for c in annotation.colour)
        mask = frame.label_image == annotation.id
        for outline in mask_outlines(mask):
            points.append(
                fm.PointsAnnotation(
                    timestamp=stamp,
                    type=fm.PointsAnnotationType.LineLoop,
                    points=[fm.Point2(x=float(x), y=float(y)) for x, y in outline],
                    outline_color=fm.Color(r=r, g=g, b=b, a=1.0),
                    fill_color=fm.Color(r=r, g=g, b=b, a=FILL_ALPHA),
                    thickness=2.0,
                )
            )
        ys, xs = np.nonzero(mask)
        if len(xs):
            texts.append(
                fm.TextAnnotation(
                    timestamp=stamp,
                    position=fm.Point2(x=float(xs.min()), y=float(ys.min())),
                    text=annotation.caption,
                    font_size=12.0,
                    text_color=fm.Color(r=0.0, g=0.0, b=0.0, a=1.0),
                    background_color=fm.Color(r=r, g=g, b=b, a=0.9),
                )
            )
        if annotation.point is not None:
            u, v, arm = float(annotation.point[0]), float(annotation.point[1]), 8.0
            points.append(
                fm.PointsAnnotation(
                    timestamp=stamp,
                    type=fm.PointsAnnotationType.LineList,
                    points=[
                        fm.Point2(x=u - arm, y=v),
                        fm.Point2(x=u + arm, y=v),
                        fm.Point2(x=u, y=v - arm),
                        fm.Point2(x=u, y=v + arm),
                    ],
                    outline_color=fm.Color(r=r, g=g, b=b, a=1.0),
                    thickness=2.0,
                )
            )
    return fm.ImageAnnotations(points=points, texts=texts)


def scene_update(frame: LiveFrame, stamp: fm.Timestamp) -> fm.SceneUpdate:
    """Every earlier entity deleted, then one entity per object with its box (translucent, its colour), its
    surface normal as an arrow from the labelled point, and its caption above the centroid."""
    entities = []
    for obj in frame.objects:
        r, g, b = (c / 255.0 for c in instance_colour(obj.track_id or obj.instance_id))
        colour = fm.Color(r=r, g=g, b=b, a=1.0)
        cubes, arrows, texts = [], [], []
        if obj.box is not None:
            center, (qx, qy, qz, qw), size = obj.box
            cubes.append(
                fm.CubePrimitive(
                    pose=fm.Pose(position=_vector(center), orientation=fm.Quaternion(x=qx, y=qy, z=qz, w=qw)),
                    size=_vector(size),
                    color=fm.Color(r=r, g=g, b=b, a=BOX_ALPHA),
                )
            )
        if obj.normal is not None and obj.normal_origin is not None:
            arrows.append(
                fm.ArrowPrimitive(
                    pose=fm.Pose(position=_vector(obj.normal_origin), orientation=_x_axis_to(obj.normal)),
                    shaft_length=NORMAL_ARROW_M * 0.7,
                    shaft_diameter=NORMAL_ARROW_M * 0.08,
                    head_length=NORMAL_ARROW_M * 0.3,
                    head_diameter=NORMAL_ARROW_M * 0.2,
                    color=colour,
                )
            )
        if obj.centroid is not None:
            x, y, z = obj.centroid
            caption = f"{obj.label} {obj.score:.2f}" + (f" #{obj.track_id}" if obj.track_id else "")
            texts.append(
                fm.TextPrimitive(
                    pose=fm.Pose(position=fm.Vector3(x=x, y=y - 0.04, z=z), orientation=fm.Quaternion(w=1.0)),
                    billboard=True,
                    font_size=14.0,
                    scale_invariant=True,
                    color=fm.Color(r=1.0, g=1.0, b=1.0, a=1.0),
                    text=caption,
                )
            )
        if cubes or arrows or texts:
            entities.append(
                fm.SceneEntity(
                    timestamp=stamp,
                    frame_id=frame.frame_id,
                    id=f"object {obj.track_id or obj.instance_id}",
                    cubes=cubes,
                    arrows=arrows,
                    texts=texts,
                )
            )
    deletion = fm.SceneEntityDeletion(timestamp=stamp, type=fm.SceneEntityDeletionType.All)
    return fm.SceneUpdate(deletions=[deletion], entities=entities)


# PointCloud layout of /pmp/object_points: x y z float32, red green blue alpha uint8 (Foxglove's
# "rgba-fields" colour mode), instance_id uint16, 2 bytes of padding.
_FLOAT32, _UINT8, _UINT16 = (
    fm.PackedElementFieldNumericType.Float32,
    fm.PackedElementFieldNumericType.Uint8,
    fm.PackedElementFieldNumericType.Uint16,
)
_CLOUD_FIELDS = [
    ("x", 0, "<f4", _FLOAT32),
    ("y", 4, "<f4", _FLOAT32),
    ("z", 8, "<f4", _FLOAT32),
    ("red", 12, "u1", _UINT8),
    ("green", 13, "u1", _UINT8),
    ("blue", 14, "u1", _UINT8),
    ("alpha", 15, "u1", _UINT8),
    ("instance_id", 16, "<u2", _UINT16),
]
_CLOUD_DTYPE = np.dtype(
    {
        "names": [f[0] for f in _CLOUD_FIELDS],
        "formats": [f[2] for f in _CLOUD_FIELDS],
        "offsets": [f[1] for f in _CLOUD_FIELDS],
        "itemsize": 20,
    }
)


def point_cloud(cloud: PointSet | None, frame_id: str, stamp: fm.Timestamp) -> fm.PointCloud:
    """The cloud as a foxglove PointCloud (_CLOUD_DTYPE's fields); None: an empty cloud, so the panel clears."""
    count = 0 if cloud is None else len(cloud.xyz)
    points = np.zeros(count, _CLOUD_DTYPE)
    if count:
        for axis, name in enumerate("xyz"):
            points[name] = cloud.xyz[:, axis]
        for channel, name in enumerate(("red", "green", "blue")):
            points[name] = cloud.rgb[:, channel]
        points["alpha"] = 255
        points["instance_id"] = cloud.instance_id
    fields = [fm.PackedElementField(name=name, offset=offset, type=kind) for name, offset, _, kind in _CLOUD_FIELDS]
    return fm.PointCloud(
        timestamp=stamp,
        frame_id=frame_id,
        pose=fm.Pose(position=fm.Vector3(), orientation=fm.Quaternion(w=1.0)),
        point_stride=_CLOUD_DTYPE.itemsize,
        fields=fields,
        data=points.tobytes(),
    )


def foxglove_layout() -> dict:
    """The Foxglove layout (the app's "Import from file" format) that opens every channel: the image with
    its annotations, the overlay, the 3D objects and their points in the camera frame, the label image, the
    result and diagnostics as raw messages, and the log. config/foxglove_layout.json is this, written by
    `python -m pmp_ros.viz.live_view --write-layout config/foxglove_layout.json`."""
    panels = {
        "Image!pmp_image": {
            "imageMode": {
                "imageTopic": CHANNELS["image"],
                "annotations": {CHANNELS["annotations"]: {"visible": True}},
            },
            "topics": {},
        },
        "Image!pmp_overlay": {"imageMode": {"imageTopic": CHANNELS["overlay"]}, "topics": {}},
        "3D!pmp_objects": {
            "followMode": "follow-pose",
            "scene": {},
            "topics": {
                CHANNELS["objects"]: {"visible": True},
                CHANNELS["object_points"]: {"visible": True, "colorMode": "rgba-fields", "pointSize": 3},
            },
        },
        "Image!pmp_label_image": {
            "imageMode": {"imageTopic": CHANNELS["label_image"], "minValue": 0, "maxValue": 20},
            "topics": {},
        },
        "RawMessages!pmp_result": {"topicPath": CHANNELS["result"], "expansion": "all"},
        "RawMessages!pmp_diagnostics": {"topicPath": CHANNELS["diagnostics"], "expansion": "all"},
        "RosOut!pmp_log": {"topicToRender": CHANNELS["log"], "searchTerms": [], "minLogLevel": 1},
    }
    layout = {
        "direction": "column",
        "splitPercentage": 65,
        "first": {
            "direction": "row",
            "first": {"direction": "row", "first": "Image!pmp_image", "second": "Image!pmp_overlay"},
            "second": "3D!pmp_objects",
            "splitPercentage": 66,
        },
        "second": {
            "direction": "row",
            "first": "Image!pmp_label_image",
            "second": {
                "direction": "row",
                "first": "RawMessages!pmp_result",
                "second": {"direction": "row", "first": "RawMessages!pmp_diagnostics", "second": "RosOut!pmp_log"},
            },
            "splitPercentage": 25,
        },
    }
    return {
        "configById": panels,
        "globalVariables": {},
        "userNodes": {},
        "playbackConfig": {"speed": 1},
        "layout": layout,
    }


def _timestamp(stamp_ns: int) -> fm.Timestamp:
    return fm.Timestamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)


def _vector(values) -> fm.Vector3:
    return fm.Vector3(x=float(values[0]), y=float(values[1]), z=float(values[2]))


def _x_axis_to(direction: Vector3) -> fm.Quaternion:
    """The shortest rotation taking +x (a foxglove arrow's direction) to the unit vector direction."""
    x, y, z = (float(c) for c in direction)
    norm = math.sqrt(x * x + y * y + z * z) or 1.0
    x, y, z = x / norm, y / norm, z / norm
    if x < -1.0 + 1e-9:  # opposite: half a turn about z
        return fm.Quaternion(x=0.0, y=0.0, z=1.0, w=0.0)
    # q = (1 + x·d, (1,0,0) × d) normalised
    w, qy, qz = 1.0 + x, -z, y
    scale = math.sqrt(w * w + qy * qy + qz * qz)
    return fm.Quaternion(x=0.0, y=qy / scale, z=qz / scale, w=w / scale)


def _jpeg(rgb: np.ndarray, frame_id: str, stamp: fm.Timestamp) -> fm.CompressedImage:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {rgb.shape}")
    return fm.CompressedImage(timestamp=stamp, frame_id=frame_id, data=data.tobytes(), format="jpeg")


def _mono16(label_image: np.ndarray, frame_id: str, stamp: fm.Timestamp) -> fm.RawImage:
    labels = np.ascontiguousarray(label_image, dtype="<u2")
    height, width = labels.shape
    return fm.RawImage(
        timestamp=stamp,
        frame_id=frame_id,
        width=width,
        height=height,
        encoding="mono16",
        step=2 * width,
        data=labels.tobytes(),
    )


def main(argv: list[str] | None = None) -> int:
    """python -m pmp_ros.viz.live_view --write-layout PATH: write foxglove_layout() as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write-layout", type=Path, required=True)
    args = parser.parse_args(argv)
    args.write_layout.write_text(json.dumps(foxglove_layout(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
