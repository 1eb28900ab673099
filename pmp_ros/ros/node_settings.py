"""The node's parameters as one frozen, typed value: NodeSettings, built once from the parameter table
(interface.PARAMETERS) when the node declares its parameters, and replaced as a whole when a dynamic one
changes, so that a thread that took `node.settings` sees one consistent set for its whole frame.

Also what follows from the settings alone: the ROS parameter descriptors, the inference settings the
Predictor runs with (the checkpoint's, overridden by the parameters that are set) and how they are described
in the log, the text settings of the prompts, the depth range, and pmp_node --help.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException

from pmp_ros.model.config import InferenceConfig
from pmp_ros.perception.tracking_stage import detection_settings
from pmp_ros.ros import interface
from pmp_ros.tracking import TrackerParams

# Settings of the Predictor's InferenceConfig that follow a parameter of the same name at run time (left
# unset, the checkpoint's value applies: interface.Parameter.from_checkpoint).
INFERENCE_PARAMETERS = ("score_threshold", "mask_threshold", "max_instances")
# TrackerParams' fields that a tracking_* parameter sets (publish_score is the score threshold's).
_TRACKER_FIELDS = tuple(spec.name.removeprefix(interface.TRACKER_PREFIX) for spec in interface.TRACKER_PARAMETERS)


class StartupError(Exception):
    """The node cannot start (bad parameter, model file); main prints it as one line and exits non-zero."""


@dataclass(frozen=True)
class NodeSettings:
    """Every node parameter (interface.PARAMETERS: meaning, range, default) by name; list parameters as
    tuples; the tracking_* parameters as `tracker` (its publish_score is set per frame from the score
    threshold in force: `tracker_params`)."""

    model_path: str
    device: str
    precision: str
    inference_width: int
    inference_height: int
    score_threshold: float
    mask_threshold: float
    max_instances: int
    context_vocabulary: tuple[str, ...]
    prompt_templates: tuple[str, ...]
    backend: str
    onnx_path: str
    image_transport: str
    image_reliability: str
    cameras: tuple[str, ...]
    camera_batching: str
    use_depth: bool
    depth_max_age: float
    depth_min: float
    depth_max: float
    max_instruction_length: int
    object_voxel_size: float
    segment_timeout: float
    segment_model_timeout: float
    autostart: bool
    foxglove_port: int
    foxglove_host: str
    cpu_threads: int
    tracking: bool
    tracker: TrackerParams

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeSettings:
        """The settings of parameter values (name -> value, every parameter of interface.PARAMETERS)."""
        plain = {field.name for field in dataclasses.fields(cls)} - {"tracker"}
        return cls(
            **{name: tuple(values[name]) if isinstance(values[name], list) else values[name] for name in plain},
            tracker=interface.tracker_params(values, publish_score=TrackerParams.publish_score),
        )

    def values(self) -> dict[str, Any]:
        """The parameter values (name -> value, lists as rclpy gives them): from_values' inverse."""
        values = {
            field.name: list(value) if isinstance(value := getattr(self, field.name), tuple) else value
            for field in dataclasses.fields(self)
            if field.name != "tracker"
        }
        return values | {interface.TRACKER_PREFIX + field: getattr(self.tracker, field) for field in _TRACKER_FIELDS}

    def changed(self, changes: Mapping[str, Any]) -> NodeSettings:
        """These settings with some parameters (name -> value) changed."""
        return NodeSettings.from_values(self.values() | dict(changes))

    def tracker_params(self, publish_score: float) -> TrackerParams:
        """The tracker's settings, publishing tracks from `publish_score` (the score threshold in force)."""
        return replace(self.tracker, publish_score=publish_score)

    def inference(self, checkpoint: InferenceConfig) -> InferenceConfig:
        """The checkpoint's InferenceConfig with the parameters that are set (not left to the checkpoint)."""
        specs = interface.PARAMETERS_BY_NAME
        overrides = {
            name: getattr(self, name) for name in INFERENCE_PARAMETERS if not specs[name].is_unset(getattr(self, name))
        }
        height, width = checkpoint.size
        if not specs["inference_height"].is_unset(self.inference_height):
            height = self.inference_height
        if not specs["inference_width"].is_unset(self.inference_width):
            width = self.inference_width
        return replace(checkpoint, size=(height, width), **overrides)

    def predictor_inference(self, checkpoint: InferenceConfig) -> InferenceConfig:
        """What the predictor runs with: the inference settings, with the score threshold lowered for the
        tracker while tracking (the tracks are published from the score threshold on, and the segment
        service's answers are cut to it: tracking_stage.above_threshold)."""
        settings = self.inference(checkpoint)
        return detection_settings(settings) if self.tracking else settings

    def describe_inference(self, checkpoint: InferenceConfig) -> str:
        """The inference settings in force and where each comes from, e.g. 'score_threshold 0.15 (checkpoint)'."""
        cfg, specs = self.inference(checkpoint), interface.PARAMETERS_BY_NAME

        def source(*names: str) -> str:
            return "checkpoint" if all(specs[n].is_unset(getattr(self, n)) for n in names) else "parameter"

        parts = [f"{name} {getattr(cfg, name)} ({source(name)})" for name in INFERENCE_PARAMETERS]
        tracking = (
            f"tracking on (instances from score {detection_settings(cfg).score_threshold})"
            if self.tracking
            else "tracking off"
        )
        return ", ".join(
            [f"size {cfg.size[1]}x{cfg.size[0]} ({source('inference_width', 'inference_height')})", *parts, tracking]
        )

    def text(self, train_classes: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """(context classes, templates or None = the model's own) from the parameters ([''] = default; the
        default context is the model's training classes)."""
        context = tuple(c for c in self.context_vocabulary if c) or train_classes
        templates = tuple(t for t in self.prompt_templates if t) or None
        return context, templates

    @property
    def depth_range(self) -> tuple[float, float]:
        """The valid depth readings (metres, inclusive): the depth_min and depth_max parameters."""
        return self.depth_min, self.depth_max

    @property
    def camera_names(self) -> tuple[str, ...]:
        """The cameras' namespaces ('' alone: the single camera on the plain names)."""
        return tuple(name for name in self.cameras if name) or ("",)

    @property
    def batching_cameras(self) -> bool:
        """Whether the worker takes every camera's waiting frame for one batch (the camera_batching parameter;
        auto: with the torch backend, whose batches raise the results per second (docs/benchmarks.md), not
        with onnxruntime, whose graph runs one frame at a time: a batch would only delay the first frames)."""
        return self.camera_batching == "batch" or self.camera_batching == "auto" and self.backend != "onnxruntime"


def declare(node) -> NodeSettings:
    """Declare every parameter on the node (with its descriptor) and return the settings of their values;
    StartupError with the reason for a bad value."""
    try:
        for spec in interface.PARAMETERS:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
    except ParameterException as error:
        raise StartupError(f"invalid parameter: {error}") from None
    return validated({spec.name: node.get_parameter(spec.name).value for spec in interface.PARAMETERS})


def validated(values: Mapping[str, Any]) -> NodeSettings:
    """NodeSettings of the declared parameters' values; StartupError with the reason for a bad one."""
    for spec in interface.PARAMETERS:
        reason = spec.validate(values[spec.name])
        if reason:
            raise StartupError(f"invalid parameter: {reason}")
    reason = interface.combination_problem(values)
    if reason:
        raise StartupError(f"invalid parameter: {reason}")
    return NodeSettings.from_values(values)


def change_problem(settings: NodeSettings, changes: Mapping[str, Any]) -> str | None:
    """Why parameters cannot change to these values (name -> value), or None."""
    for name, value in changes.items():
        spec = interface.PARAMETERS_BY_NAME.get(name)
        reason = spec.validate(value) if spec else f"unknown parameter {name}"
        if reason:
            return reason
    return interface.combination_problem(settings.values() | dict(changes))


def descriptor(spec: interface.Parameter) -> ParameterDescriptor:
    """The ROS descriptor of a parameter: its description, whether it may change, its range or rule."""
    descriptor = ParameterDescriptor(name=spec.name, description=spec.description, read_only=not spec.dynamic)
    if spec.from_checkpoint is not None:
        pass  # the "checkpoint's value" default lies outside the range: spec.validate checks both
    elif isinstance(spec.default, float):
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0)
        ]
    elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.min_value is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)]
    if spec.choices:
        descriptor.additional_constraints = f"one of {list(spec.choices)}"
    elif spec.pattern:
        descriptor.additional_constraints = f"matches {spec.pattern}"
    return descriptor


def usage() -> str:
    """pmp_node --help: how to run it and its parameters (interface.PARAMETERS)."""
    lines = [
        "usage: pmp_node [-h] [--ros-args [-p NAME:=VALUE] [--params-file FILE] [-r FROM:=TO] [-r __ns:=/NS]]",
        "",
        "The pmp_segmenter node: segments what a text instruction names in a camera stream (docs/node.md).",
        "Topics (relative, remap with -r): "
        + ", ".join(
            (interface.IMAGE_TOPIC, interface.INSTRUCTION_TOPIC, interface.DEPTH_TOPIC, interface.DEPTH_INFO_TOPIC)
        )
        + " in; "
        + ", ".join(
            (interface.SEGMENTATION_TOPIC, interface.POINTS_TOPIC, interface.OBJECTS_TOPIC, interface.DETECTIONS_TOPIC)
        )
        + " out; service "
        + interface.SEGMENT_SERVICE
        + ".",
        "",
        "Parameters (name default: meaning):",
    ]
    lines += [f"  {spec.name} {spec.default!r}: {spec.description}" for spec in interface.PARAMETERS]
    return "\n".join(lines)
