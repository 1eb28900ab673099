"""The node's ROS interface: topic names and parameters, in one place.

Topic names are relative, so a namespace or remapping moves them; the launch file, the README and the
tests read them from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pmp_ros.geometry import DEPTH_RANGE_M
from pmp_ros.ros.pipeline import SEGMENT_TIMEOUT_MAX_S
from pmp_ros.tracking import TrackerParams

NODE_NAME = "pmp_segmenter"

# Inputs
IMAGE_TOPIC = "image"  # sensor_msgs/Image (or CompressedImage on IMAGE_TOPIC + "/compressed")
INSTRUCTION_TOPIC = "instruction"  # std_msgs/String, reliable; volatile and transient-local publishers alike
STRUCTURED_INSTRUCTION_TOPIC = "structured_instruction"  # pmp_ros_msgs/Instruction, same QoS
DEPTH_TOPIC = "depth/image"  # sensor_msgs/Image, 16UC1 (mm) or 32FC1 (m), registered to the colour image
DEPTH_INFO_TOPIC = "depth/camera_info"  # sensor_msgs/CameraInfo of the depth image

# Outputs
SEGMENTATION_TOPIC = "segmentation"  # pmp_ros_msgs/SegmentationResult
POINTS_TOPIC = "labelled_points"  # pmp_ros_msgs/LabelledPointArray
OVERLAY_TOPIC = "overlay"  # sensor_msgs/Image rgb8, only while subscribed
MARKERS_TOPIC = "markers"  # visualization_msgs/MarkerArray, only while subscribed
OBJECTS_TOPIC = "objects"  # pmp_ros_msgs/Object3DArray, with depth
# sensor_msgs/PointCloud2 (x y z rgb instance_id), with depth, only while subscribed
OBJECT_POINTS_TOPIC = "object_points"
LABEL_IMAGE_TOPIC = "label_image"  # sensor_msgs/Image mono16 (0 background, instance ids), only while subscribed
# vision_msgs (pmp_ros/ros/vision.py), only while subscribed: Detection2DArray, and with depth Detection3DArray
DETECTIONS_TOPIC = "detections"
DETECTIONS_3D_TOPIC = "detections_3d"

# A camera's namespace (the `cameras` parameter): relative ROS name tokens such as head or arm/wrist; empty
# items are ignored, so the default [""] is the single camera.
CAMERA_NAME_PATTERN = r"([A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*)?"

# Services
SEGMENT_SERVICE = "segment"  # pmp_ros_msgs/Segment: one result for one instruction on the next frame
DIAGNOSTICS_TOPIC = "/diagnostics"  # diagnostic_msgs/DiagnosticArray (the standard absolute topic)


def diagnostics_status_name(node_fully_qualified_name: str = "/" + NODE_NAME, camera: str = "") -> str:
    """The name of the node's DiagnosticStatus for one camera ("" = the single camera): its fully qualified
    name tells two nodes apart on the one /diagnostics topic, the camera the cameras of one node."""
    return f"{node_fully_qualified_name}: {camera + ' ' if camera else ''}segmentation"


def camera_topic(camera: str, topic: str) -> str:
    """A camera's name for one of the topics above: `topic` under the camera's namespace (relative, so under
    the node's too), e.g. head/image; the single camera ("") keeps the plain name."""
    return f"{camera}/{topic}" if camera else topic


@dataclass(frozen=True)
class Parameter:
    """A node parameter: its default, meaning, allowed values and whether it may change at run time."""

    name: str
    default: Any
    description: str
    choices: tuple | None = None
    min_value: float | None = None
    max_value: float | None = None
    pattern: str | None = None  # a regular expression a string value must match in full
    # For a list of names: a regular expression each item must match in full; the items must also differ.
    item_pattern: str | None = None
    dynamic: bool = False
    # For settings the checkpoint carries (InferenceConfig): the default, meaning "the checkpoint's value".
    # The checkpoint is the one source of truth; a parameter set to anything else overrides it.
    from_checkpoint: Any = None
    # A further check of the value (the reason it is unusable, or None), beyond range, choices and pattern.
    check: Callable[[Any], str | None] | None = None

    def is_unset(self, value: Any) -> bool:
        """Whether `value` leaves the setting to the checkpoint."""
        return self.from_checkpoint is not None and value == self.from_checkpoint

    def validate(self, value: Any) -> str | None:
        """The reason `value` is invalid, or None if it is valid."""
        if self.is_unset(value):
            return None
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {list(self.choices)}, got {value!r}"
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            return f"{self.name} must match {self.pattern!r}, got {value!r}"
        if self.item_pattern is not None:
            bad = [item for item in value if not re.fullmatch(self.item_pattern, item)]
            if bad:
                return f"{self.name}: each item must match {self.item_pattern!r}, got {bad!r}"
            if len(set(value)) < len(value):
                return f"{self.name}: the items must differ, got {value!r}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min_value is not None and value < self.min_value:
                return f"{self.name} must be >= {self.min_value}, got {value}"
            if self.max_value is not None and value > self.max_value:
                return f"{self.name} must be <= {self.max_value}, got {value}"
        if self.check is not None:
            return self.check(value)
        return None


def _templates_problem(templates: list[str]) -> str | None:
    """Why the prompt_templates parameter's value is unusable (model.clip.text.check_templates: exactly one
    bare {} that formats a name), or None; [''] (the model's own) is usable."""
    from pmp_ros.model.clip.text import check_templates  # imports torch: only when the parameter is checked

    given = [template for template in templates if template]
    if not given:
        return None
    try:
        check_templates(given)
    except ValueError as error:
        return f"prompt_templates: {error}"
    return None


def combination_problem(values: Mapping[str, Any]) -> str | None:
    """Why a set of parameter values (name -> value, all of them) does not go together, or None: the checks
    that involve two parameters, which Parameter.validate cannot make."""
    if values["depth_min"] >= values["depth_max"]:
        return f"depth_min ({values['depth_min']}) must be below depth_max ({values['depth_max']})"
    return None


# The tracker's settings (pmp_ros.tracking.TrackerParams, whose docstring explains them): each field is the
# parameter TRACKER_PREFIX + field, its default the field's. publish_score is none of them: the node publishes
# tracks from score_threshold on, as it publishes instances without tracking.
TRACKER_PREFIX = "tracking_"
_TRACKER_FIELDS = {  # field: (description, min, max)
    "iou_weight": ("Weight of 1 - mask IoU in the association cost", 0.0, 10.0),
    "appearance_weight": ("Weight of the appearance (CLIP embedding) distance in the association cost", 0.0, 10.0),
    "distance_weight": ("Weight of the 3D distance (with depth) in the association cost", 0.0, 10.0),
    "appearance_scale": ("Cosine distance at which the appearance cost is 1", 0.001, 2.0),
    "distance_scale_m": ("3D distance (m) at which the distance cost is 1", 0.001, 10.0),
    "label_change_cost": ("Association cost added when an instance's label differs from the track's", 0.0, 10.0),
    "max_cost": ("Track-instance pairs costing more are never associated", 0.0, 10.0),
    "new_track_score": ("Least instance score that starts a track (weaker ones only continue tracks)", 0.0, 1.0),
    "min_hits": ("Frames with an instance that confirm a track (published from then on)", 1, 100),
    "max_misses": ("Consecutive frames without an instance a confirmed track survives", 0, 1000),
    "publish_misses": (
        "Consecutive frames without an instance a track is published with its predicted mask (no image check)",
        0,
        1000,
    ),
    "image_check_tolerance": (
        "Mean colour difference (grey levels) at which a missed track's place in the image still shows it; 0 = off",
        0.0,
        255.0,
    ),
    "image_search": ("Search radius of the image check around a missed track, as a fraction of the width", 0.0, 0.5),
    "score_weight": ("Weight of the frame's score in the track's smoothed score (1 = no smoothing)", 0.0, 1.0),
    "miss_decay": ("Factor on a track's smoothed score per frame without an instance", 0.0, 1.0),
    "motion_weight": ("Weight of the newest step in a track's velocity estimate", 0.0, 1.0),
    "appearance_update": ("Weight of the newest instance's embedding in the track's appearance", 0.0, 1.0),
}
TRACKER_PARAMETERS: tuple[Parameter, ...] = tuple(
    Parameter(
        TRACKER_PREFIX + field,
        getattr(TrackerParams, field),
        description,
        min_value=low,
        max_value=high,
        dynamic=True,
    )
    for field, (description, low, high) in _TRACKER_FIELDS.items()
)


def tracker_params(values: Mapping[str, Any], publish_score: float) -> TrackerParams:
    """The TrackerParams of the node's parameter values (name -> value) and its publish threshold."""
    return TrackerParams(
        **{field: values[TRACKER_PREFIX + field] for field in _TRACKER_FIELDS}, publish_score=publish_score
    )


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("model_path", "", "PMP checkpoint (.safetensors); empty = the shipped model in share/pmp_ros/models"),
    Parameter(
        "device",
        "auto",
        "Where the model runs: auto (CUDA when available), cuda, cuda:N or cpu",
        pattern=r"auto|cpu|cuda(:\d+)?",
    ),
    Parameter(
        "precision",
        "auto",
        "Compute precision: auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, bf16, fp16",
        choices=("auto", "fp32", "bf16", "fp16"),
    ),
    Parameter(
        "inference_width",
        0,
        "Width the image is resized to before inference (pixels, multiple of 32 is best); 0 = the checkpoint's",
        min_value=32,
        max_value=4096,
        from_checkpoint=0,
    ),
    Parameter(
        "inference_height",
        0,
        "Height the image is resized to before inference (pixels); 0 = the checkpoint's",
        min_value=32,
        max_value=4096,
        from_checkpoint=0,
    ),
    Parameter(
        "score_threshold",
        -1.0,
        "Minimum instance score (class probability x mask quality) to publish; -1 = the checkpoint's",
        min_value=0.0,
        max_value=1.0,
        dynamic=True,
        from_checkpoint=-1.0,
    ),
    Parameter(
        "mask_threshold",
        -1.0,
        "Mask probability above which a pixel belongs to an instance; -1 = the checkpoint's",
        min_value=0.0,
        max_value=1.0,
        dynamic=True,
        from_checkpoint=-1.0,
    ),
    Parameter(
        "max_instances",
        0,
        "Most instances published per image; 0 = the checkpoint's",
        min_value=1,
        max_value=255,
        dynamic=True,
        from_checkpoint=0,
    ),
    Parameter(
        "context_vocabulary",
        [""],
        "Extra class names competing with the prompts (reduces false "
        "positives); [''] = the model's training vocabulary",
        dynamic=True,
    ),
    Parameter(
        "prompt_templates",
        [""],
        "Templates for class text embeddings, each with exactly one {} for the class name (literal braces "
        "doubled); [''] = the model's own",
        dynamic=True,
        check=_templates_problem,
    ),
    Parameter(
        "backend",
        "torch",
        "Inference backend: torch (eager PyTorch) or onnxruntime (a graph from pmp-export-onnx, docs/deployment.md)",
        choices=("torch", "onnxruntime"),
    ),
    Parameter(
        "onnx_path",
        "",
        "With backend onnxruntime: the graph exported from model_path; empty = model_path with the suffix .onnx",
    ),
    Parameter(
        "image_transport",
        "raw",
        "raw (sensor_msgs/Image) or compressed (CompressedImage on <image>/compressed)",
        choices=("raw", "compressed"),
    ),
    Parameter(
        "image_reliability",
        "auto",
        "QoS reliability of the image, depth and camera info subscriptions: auto follows the publishers (reliable "
        "while every publisher is, best effort once one offers it), or reliable, or best_effort",
        choices=("auto", "reliable", "best_effort"),
    ),
    Parameter(
        "cameras",
        [""],
        "Namespaces of the cameras to segment (e.g. [head, wrist]: head/image, head/segmentation, ...), one model "
        "for all; [''] = one camera on the plain topic names",
        item_pattern=CAMERA_NAME_PATTERN,
    ),
    Parameter(
        "camera_batching",
        "auto",
        "batch: the waiting frames of several cameras run as one batch (one forward) where their instructions "
        "give the same prompts (more results per second, each later); round_robin: one camera's frame at a time, "
        "the cameras in turn (lower latency); auto: batch, except with backend onnxruntime (its graph runs one "
        "frame at a time)",
        choices=("auto", "batch", "round_robin"),
        dynamic=True,
    ),
    Parameter("use_depth", False, "Subscribe to depth and camera info, and publish 3D labelled points"),
    Parameter(
        "depth_max_age",
        0.05,
        "Largest stamp difference (s) between a colour image and the depth image used with it",
        min_value=0.0,
        max_value=1.0,
        dynamic=True,
    ),
    Parameter(
        "depth_min",
        DEPTH_RANGE_M[0],
        "Nearest valid depth reading (m); nearer ones (and 0, NaN, inf) are no reading",
        min_value=0.0,
        max_value=DEPTH_RANGE_M[1],
        dynamic=True,
    ),
    Parameter(
        "depth_max",
        DEPTH_RANGE_M[1],
        "Farthest valid depth reading (m); farther ones are no reading (at most geometry.DEPTH_RANGE_M's far end, "
        "which the tracker and the instruction's relations use)",
        min_value=0.0,
        max_value=DEPTH_RANGE_M[1],
        dynamic=True,
    ),
    Parameter(
        "max_instruction_length",
        500,
        "Longer instructions are rejected (characters)",
        min_value=1,
        max_value=100000,
        dynamic=True,
    ),
    Parameter(
        "object_voxel_size",
        0.005,
        "Voxel size (m) of the object point cloud; 0 keeps every point",
        min_value=0.0,
        max_value=0.5,
        dynamic=True,
    ),
    Parameter(
        "segment_timeout",
        2.0,
        "Seconds the segment service waits for a camera frame when a request gives no timeout (a request's own "
        "timeout is clamped to the same maximum)",
        min_value=0.01,
        max_value=SEGMENT_TIMEOUT_MAX_S,
        dynamic=True,
    ),
    Parameter(
        "segment_model_timeout",
        10.0,
        "Seconds a segment request whose frame has arrived waits for the model to take it (busy with the "
        "stream's frames, or encoding a first instruction's text), beside the wait for the frame",
        min_value=0.01,
        max_value=3600.0,
        dynamic=True,
    ),
    Parameter(
        "autostart",
        True,
        "Configure and activate at startup; false leaves the managed node unconfigured for a lifecycle manager",
    ),
    Parameter(
        "foxglove_port",
        0,
        "Port of the Foxglove live view (a WebSocket server: image, overlay, masks, 3D objects, diagnostics of the "
        "first camera; docs/node.md: Live view); 0 = no live view",
        min_value=0,
        max_value=65535,
    ),
    Parameter(
        "foxglove_host",
        "127.0.0.1",
        "Address the live view listens on: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
    ),
    Parameter(
        "cpu_threads",
        0,
        "torch intra-op threads on CPU; 0 = one per usable core but one, kept for the middleware",
        min_value=0,
        max_value=256,
    ),
    Parameter(
        "tracking",
        True,
        "Track instances over the stream's frames: stable track ids and smoothed scores (docs/node.md); false: "
        "track_id 0 and per-frame scores",
        dynamic=True,
    ),
    *TRACKER_PARAMETERS,
)


PARAMETERS_BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}

# The launch file's arguments that set a node parameter (argument -> parameter), each only when given: an empty
# text (the arguments' default) leaves the parameter to the parameter file. managed:=true is autostart false.
LAUNCH_ARGUMENT_PARAMETERS = {
    "device": "device",
    "use_depth": "use_depth",
    "managed": "autostart",
    "cameras": "cameras",
    "tracking": "tracking",
}
_INVERTED_LAUNCH_ARGUMENTS = ("managed",)


def launch_overrides(arguments: Mapping[str, str]) -> dict[str, Any]:
    """The node parameters of the launch file's launch arguments (argument name -> text, names of
    LAUNCH_ARGUMENT_PARAMETERS): an empty text leaves the parameter to the parameter file; a list parameter
    takes comma-separated items (cameras:=head,wrist), a bool true or false, a string the text. Raises ValueError
    with the reason for text the parameter cannot take, so a bad argument stops the launch before the node
    starts."""
    overrides: dict[str, Any] = {}
    for argument, text in arguments.items():
        if argument not in LAUNCH_ARGUMENT_PARAMETERS:
            raise ValueError(f"{argument} is not a launch argument of a node parameter")
        name = LAUNCH_ARGUMENT_PARAMETERS[argument]
        parameter = PARAMETERS_BY_NAME[name]
        text = text.strip()
        if not text:
            continue
        if isinstance(parameter.default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"launch argument {argument} must be true or false, got {text!r}")
            value: Any = (text.lower() == "true") != (argument in _INVERTED_LAUNCH_ARGUMENTS)
        elif isinstance(parameter.default, list):
            value = [item.strip() for item in text.split(",")]
        elif isinstance(parameter.default, str):
            value = text
        else:
            raise ValueError(f"{argument}: parameter {name} of type {type(parameter.default).__name__} is not taken")
        reason = parameter.validate(value)
        if reason is not None:
            raise ValueError(f"launch argument {argument}: {reason}")
        overrides[name] = value
    return overrides


def cpu_threads(requested: int) -> int:
    """The model's CPU threads for the cpu_threads parameter: the value itself, or for 0 one thread per
    usable core but one. With every core in torch's parallel regions the node's DDS threads starved: a
    camera on middleware defaults lost 1280x720 frames from its 10-deep history before the node took them
    (test_node_interop, 2 loaded cores); with one core left they arrived."""
    return requested or max(1, len(os.sched_getaffinity(0)) - 1)
