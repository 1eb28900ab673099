"""The pmp_segmenter node: ROS glue around model/inference.Predictor (behaviour documented in docs/node.md).

Threads: the executor runs the callbacks, which only store messages (the newest frame, the instruction,
depth); one worker thread converts, runs the model and publishes, so a slow model never builds a queue.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from pmp_ros import paths
from pmp_ros.geometry import has_intrinsics, locate_instances
from pmp_ros.language import resolve
from pmp_ros.language.parse import InstructionParseError, ParsedInstruction, parse_instruction
from pmp_ros.model.inference import Prediction
from pmp_ros.ros import interface, messages, qos
from pmp_ros.ros.environment import configure_dds_environment
from pmp_ros.ros.image_conversion import ImageConversionError, compressed_to_rgb8, depth_to_array, image_to_rgb8
from pmp_ros.ros.pipeline import ArrivalCounter, DepthCache, Frame, FrameSlot, RollingStats, Target, instruction_problem
from pmp_ros_msgs.msg import Instruction, LabelledPointArray, SegmentationResult

DEFAULT_MODEL = "pmp_default.safetensors"
READY_TEXT = "pmp_segmenter ready"
LOG_THROTTLE_S = 5.0
DEPTH_WINDOW = 5  # pixels around the interior point whose median depth is used
# Settings of the Predictor's InferenceConfig that follow a parameter of the same name at run time (left
# unset, the checkpoint's value applies: interface.Parameter.from_checkpoint).
INFERENCE_PARAMETERS = ("score_threshold", "mask_threshold", "max_instances")
# Largest rgb8 frame (MB, rounded down) that arrived every time over best-effort QoS with config/fastdds.xml
# (16 MiB shared-memory segment); larger ones arrive sometimes or never, and neither side reports it.
# Measured with bench/bench_frame_size.py (docs/node.md); reliable QoS carried the largest image the node
# accepts.
BEST_EFFORT_MAX_FRAME_MB = 16
# Seconds a publisher on the image topic may deliver nothing before the diagnostics and the log say so.
NO_IMAGE_WARNING_S = 5.0
# open_clip's warning when it builds the CLIP towers without pretrained weights: the node's checkpoint
# holds every weight and replaces them right after, so the warning would only mislead.
OPEN_CLIP_RANDOM_INIT = "No pretrained weights loaded"


class StartupError(Exception):
    """The node cannot start (bad parameter, model file); main prints it as one line and exits non-zero."""


def _descriptor(spec: interface.Parameter) -> ParameterDescriptor:
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


def _stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class SegmenterNode(Node):
    def __init__(self) -> None:
        super().__init__(interface.NODE_NAME)
        self.params = self._declare_parameters()
        self.predictor, model_cfg = self._load_model()
        self.model_name = Path(self.model_path).name
        self._train_classes = tuple(model_cfg.train_classes)
        self.slot = FrameSlot()
        self.depth_cache = DepthCache()
        self.stats = RollingStats()
        self.camera_info: CameraInfo | None = None
        self.arrivals = ArrivalCounter()
        self.bad_images = self.bad_instructions = self.stale_results = self.errors = self.bad_camera_info = 0
        self._silent_since: float | None = None  # since when the image topic has publishers but no images
        self._received_at_last_check = 0
        self._create_interfaces()
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._worker = threading.Thread(target=self._work, name="pmp_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"{READY_TEXT}: model {self.model_path} (all weights from the checkpoint) on "
            f"{self.predictor.device} ({str(self.predictor.dtype).removeprefix('torch.')}); "
            f"inference settings: {self._describe_inference()}"
        )

    # -- startup -------------------------------------------------------------------------------------
    def _declare_parameters(self) -> dict:
        try:
            for spec in interface.PARAMETERS:
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except ParameterException as error:
            raise StartupError(f"invalid parameter: {error}") from None
        values = {spec.name: self.get_parameter(spec.name).value for spec in interface.PARAMETERS}
        for spec in interface.PARAMETERS:
            reason = spec.validate(values[spec.name])
            if reason:
                raise StartupError(f"invalid parameter: {reason}")
        return values

    def _load_model(self):
        import torch

        from pmp_ros.model.inference import Predictor

        p = self.params
        if p["cpu_threads"]:
            torch.set_num_threads(p["cpu_threads"])
        _check_device(p["device"], p["precision"])
        self.model_path = p["model_path"] or str(paths.model_file(DEFAULT_MODEL))
        if not Path(self.model_path).is_file():
            raise StartupError(f"model file not found: {self.model_path} (set the model_path parameter)")
        silence_random_init = _DropMessage(OPEN_CLIP_RANDOM_INIT)
        logging.getLogger().addFilter(silence_random_init)  # open_clip warns through the root logger
        try:
            predictor, model_cfg = Predictor.from_checkpoint(self.model_path, p["device"], p["precision"])
            self.checkpoint_inference = model_cfg.inference
            predictor.cfg = self._inference_settings()
            predictor.warmup()
        except Exception as error:  # any failure to load is fatal and reported as one line
            raise StartupError(f"cannot load model {self.model_path}: {type(error).__name__}: {error}") from None
        finally:
            logging.getLogger().removeFilter(silence_random_init)
        return predictor, model_cfg

    def _create_interfaces(self) -> None:
        p = self.params
        best_effort = p["image_reliability"] == "best_effort"
        image_qos = qos.profile(1, reliable=not best_effort)
        if p["image_transport"] == "compressed":
            self.image_subscription = self.create_subscription(
                CompressedImage, interface.IMAGE_TOPIC + "/compressed", lambda msg: self._on_image(msg, True), image_qos
            )
        else:
            self.image_subscription = self.create_subscription(
                Image, interface.IMAGE_TOPIC, lambda msg: self._on_image(msg, False), image_qos
            )
            if best_effort:
                self.get_logger().warning(
                    f"image_reliability best_effort: raw frames larger than about {BEST_EFFORT_MAX_FRAME_MB} MB "
                    f"(4000x3000 rgb8 is 36 MB) arrive sometimes or never over best-effort DDS with "
                    f"config/fastdds.xml, and nothing reports it; for such cameras set "
                    f"image_reliability:=reliable (docs/node.md)"
                )
        self.create_subscription(String, interface.INSTRUCTION_TOPIC, self._on_instruction, qos.INSTRUCTION)
        self.create_subscription(
            Instruction, interface.STRUCTURED_INSTRUCTION_TOPIC, self._on_structured_instruction, qos.INSTRUCTION
        )
        if p["use_depth"]:
            self.create_subscription(
                Image,
                interface.DEPTH_TOPIC,
                lambda msg: self.depth_cache.add(_stamp_seconds(msg.header.stamp), msg),
                image_qos,
            )
            self.create_subscription(CameraInfo, interface.DEPTH_INFO_TOPIC, self._on_camera_info, qos.profile(1))
        self.segmentation_pub = self.create_publisher(SegmentationResult, interface.SEGMENTATION_TOPIC, 5)
        self.points_pub = self.create_publisher(LabelledPointArray, interface.POINTS_TOPIC, 5)
        self.overlay_pub = self.create_publisher(Image, interface.OVERLAY_TOPIC, 2)
        self.markers_pub = self.create_publisher(MarkerArray, interface.MARKERS_TOPIC, 2)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, 10)
        self.create_timer(1.0, self._publish_diagnostics)

    # -- parameters ----------------------------------------------------------------------------------
    def _check_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            spec = interface.PARAMETERS_BY_NAME.get(parameter.name)
            reason = spec.validate(parameter.value) if spec else f"unknown parameter {parameter.name}"
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters) -> None:
        changes = {parameter.name: parameter.value for parameter in parameters}
        self.params = {**self.params, **changes}
        if any(name in INFERENCE_PARAMETERS for name in changes):
            self.predictor.cfg = self._inference_settings()
            self.get_logger().info(f"inference settings: {self._describe_inference()}")

    def _inference_settings(self):
        """The checkpoint's InferenceConfig with the parameters that are set (not left to the checkpoint)."""
        p, specs = self.params, interface.PARAMETERS_BY_NAME
        overrides = {name: p[name] for name in INFERENCE_PARAMETERS if not specs[name].is_unset(p[name])}
        height, width = self.checkpoint_inference.size
        if not specs["inference_height"].is_unset(p["inference_height"]):
            height = p["inference_height"]
        if not specs["inference_width"].is_unset(p["inference_width"]):
            width = p["inference_width"]
        return replace(self.checkpoint_inference, size=(height, width), **overrides)

    def _describe_inference(self) -> str:
        """The inference settings in force and where each comes from, e.g. 'score_threshold 0.15 (checkpoint)'."""
        cfg, p, specs = self.predictor.cfg, self.params, interface.PARAMETERS_BY_NAME

        def source(*names: str) -> str:
            return "checkpoint" if all(specs[n].is_unset(p[n]) for n in names) else "parameter"

        parts = [f"{name} {getattr(cfg, name)} ({source(name)})" for name in INFERENCE_PARAMETERS]
        return ", ".join(
            [f"size {cfg.size[1]}x{cfg.size[0]} ({source('inference_width', 'inference_height')})", *parts]
        )

    def _text_settings(self) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """(context classes, templates or None = the model's own) from the parameters ([''] = default)."""
        context = tuple(c for c in self.params["context_vocabulary"] if c) or self._train_classes
        templates = tuple(t for t in self.params["prompt_templates"] if t) or None
        return context, templates

    # -- inputs --------------------------------------------------------------------------------------
    def _on_image(self, msg, compressed: bool) -> None:
        missing = self.arrivals.add(_stamp_seconds(msg.header.stamp))
        self.slot.put(Frame(msg, compressed, time.monotonic()))
        if missing:
            self.get_logger().warning(
                f"{self.arrivals.missing} image(s) missing so far: the camera's stamps "
                f"({self.arrivals.rate_hz():.1f} Hz) imply {self.arrivals.received + self.arrivals.missing}, "
                f"{self.arrivals.received} arrived (frames too large for best-effort QoS, or a lossy network)",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        if has_intrinsics(msg.k):
            self.camera_info = msg
            return
        # The last camera info is what the points use: an uncalibrated one means no 3D until a good one.
        self.camera_info = None
        self.bad_camera_info += 1
        self.get_logger().warning(
            f"camera info without a calibration (k = {list(msg.k)}; fx and fy must be > 0): "
            f"no 3D positions until a calibrated one arrives",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def _on_instruction(self, msg: String) -> None:
        text = msg.data
        if not text.strip():
            self._clear_target(text)
            return
        problem = instruction_problem(text, self.params["max_instruction_length"])
        if problem is None:
            try:
                self._set_instruction(text, parse_instruction(text))
                return
            except InstructionParseError as error:
                problem = str(error)
            except Exception as error:  # a parser bug must not take the node down with it
                problem = f"instruction parser failed: {type(error).__name__}: {error}"
        self._reject_instruction(repr(text[:60]) + ("..." if len(text) > 60 else ""), text, problem)

    def _on_structured_instruction(self, msg: Instruction) -> None:
        if not (msg.targets or msg.excluded or msg.everything):
            self._clear_target("")
            return
        try:
            parsed = messages.parsed_from_instruction(msg)
        except InstructionParseError as error:
            self._reject_instruction("structured instruction", "", str(error))
            return
        self._set_instruction("", parsed)

    def _set_instruction(self, text: str, parsed: ParsedInstruction) -> None:
        self.slot.set_target(text, parsed)
        source = repr(text) if text else "structured instruction"
        self.get_logger().info(f"instruction {source} -> {parsed.describe()}")

    def _clear_target(self, text: str) -> None:
        self.slot.set_target(text, None)
        self.get_logger().info("empty instruction: target cleared, publishing nothing until the next one")

    def _reject_instruction(self, what: str, text: str, problem: str) -> None:
        self.slot.set_target(text, None)
        self.bad_instructions += 1
        self.get_logger().warning(
            f"rejected instruction {what}: {problem}; target cleared", throttle_duration_sec=LOG_THROTTLE_S
        )

    def _depth_for(self, image_msg, shape: tuple[int, int]):
        """(depth array, K) matched to the colour frame, or (None, None) without usable depth."""
        if not self.params["use_depth"] or self.camera_info is None:
            return None, None
        depth_msg = self.depth_cache.match(_stamp_seconds(image_msg.header.stamp), self.params["depth_max_age"])
        if depth_msg is None:
            return None, None
        try:
            depth = depth_to_array(depth_msg)
            if depth.shape != shape:
                raise ImageConversionError(
                    f"depth image {depth.shape[1]}x{depth.shape[0]} does not match the "
                    f"colour image {shape[1]}x{shape[0]}"
                )
        except ImageConversionError as error:
            self._bad_input("depth image", error)
            return None, None
        return depth, self.camera_info.k

    def _bad_input(self, what: str, error: Exception) -> None:
        self.bad_images += 1
        self.get_logger().warning(f"ignored bad {what}: {error}", throttle_duration_sec=LOG_THROTTLE_S)

    # -- worker --------------------------------------------------------------------------------------
    def _work(self) -> None:
        encoded = None  # (generation, context, templates) of the text features held by the predictor
        while (item := self.slot.take()) is not None:
            frame, target = item
            if target.parsed is None:
                continue
            try:
                context, templates = self._text_settings()
                plan = resolve.plan_prompts(target.parsed, context)
                if plan.num_targets and encoded != (target.generation, context, templates):
                    self.predictor.set_prompts(plan.prompts, context, templates)
                    encoded = (target.generation, context, templates)
                self._process(frame, target, plan)
            except ImageConversionError as error:
                self._bad_input("image", error)
            except Exception as error:  # keep serving frames; the diagnostics report the error count
                self.errors += 1
                encoded = None
                self.get_logger().error(
                    f"frame failed: {type(error).__name__}: {error}", throttle_duration_sec=LOG_THROTTLE_S
                )

    def _process(self, frame: Frame, target: Target, plan: resolve.PromptPlan) -> None:
        """Segment the frame for the plan's prompts, resolve the instruction on the instances and publish
        the chosen targets. An instruction with no target (only exclusions) publishes an empty result, so
        that a consumer sees there is nothing to act on."""
        msg = frame.msg
        rgb = compressed_to_rgb8(msg) if frame.compressed else image_to_rgb8(msg)
        depth, k = self._depth_for(msg, rgb.shape[:2])
        start = time.monotonic()
        if plan.num_targets:
            prediction = self.predictor.predict([rgb], semantic=False)[0]
            prediction, resolution = resolve.apply(prediction, target.parsed, plan, depth, k)
        else:
            prediction = Prediction(np.zeros(rgb.shape[:2], np.uint16), [], None)
            resolution = resolve.resolve(target.parsed, plan, [])
        inference_s = time.monotonic() - start
        points = locate_instances([i.mask for i in prediction.instances], depth, k, DEPTH_WINDOW)
        outputs = [
            (
                self.segmentation_pub,
                messages.segmentation_result(
                    msg.header, target.instruction, target.parsed, plan.targets, resolution.note, prediction
                ),
            ),
            (self.points_pub, messages.labelled_points(msg.header, target.instruction, prediction, points)),
        ]
        if self.overlay_pub.get_subscription_count():
            outputs.append((self.overlay_pub, messages.overlay_image(rgb, prediction, points, msg.header)))
        if self.markers_pub.get_subscription_count():
            outputs.append((self.markers_pub, messages.target_markers(msg.header, prediction, points)))

        def publish() -> None:
            for publisher, message in outputs:
                publisher.publish(message)

        if self.slot.publish_if_current(target, publish):
            self.stats.add(time.monotonic() - frame.received, inference_s)
        else:
            self.stale_results += 1

    def _image_silence(self) -> str | None:
        """Why no image arrives although the image topic has publishers (after NO_IMAGE_WARNING_S), or None.
        Called once a second by the diagnostics timer."""
        now = time.monotonic()
        received = self.arrivals.received
        publishers = self.count_publishers(self.image_subscription.topic_name)
        if not publishers or received != self._received_at_last_check:
            self._silent_since = None
        elif self._silent_since is None:
            self._silent_since = now
        self._received_at_last_check = received
        if self._silent_since is None or now - self._silent_since < NO_IMAGE_WARNING_S:
            return None
        reason = (
            f"{publishers} publisher(s) on {self.image_subscription.topic_name} but no image for "
            f"{now - self._silent_since:.0f} s"
        )
        if self.params["image_reliability"] == "best_effort" and self.params["image_transport"] == "raw":
            reason += (
                f"; if the camera is streaming, its frames may be larger than best-effort QoS carries "
                f"(about {BEST_EFFORT_MAX_FRAME_MB} MB): set image_reliability:=reliable"
            )
        else:
            reason += "; is the camera streaming?"
        return reason

    def _publish_diagnostics(self) -> None:
        summary = self.stats.summary()
        target = self.slot.target
        silence = self._image_silence()
        values = {
            "rate_hz": f"{summary['rate']:.2f}",
            "latency_p50_ms": f"{summary['latency_p50_ms']:.1f}",
            "inference_p50_ms": f"{summary['inference_p50_ms']:.1f}",
            "dropped_frames": self.slot.dropped,
            "images_received": self.arrivals.received,
            "images_missing": self.arrivals.missing,
            "camera_rate_hz": f"{self.arrivals.rate_hz():.2f}",
            "bad_images": self.bad_images,
            "bad_camera_info": self.bad_camera_info,
            "bad_instructions": self.bad_instructions,
            "stale_results": self.stale_results,
            "errors": self.errors,
            "model": self.model_name,
            **{name: getattr(self.predictor.cfg, name) for name in INFERENCE_PARAMETERS},
            "inference_size": f"{self.predictor.cfg.size[1]}x{self.predictor.cfg.size[0]}",
            "device": self.predictor.device,
            "instruction": target.instruction,
            "understood": target.parsed.describe() if target.parsed else "",
        }
        problems = ([] if target.parsed else ["waiting for a valid instruction"]) + ([silence] if silence else [])
        if silence:
            self.get_logger().warning(silence, throttle_duration_sec=LOG_THROTTLE_S)
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        self.diagnostics_pub.publish(
            messages.diagnostics(
                self.get_clock().now().to_msg(),
                interface.diagnostics_status_name(self.get_fully_qualified_name()),
                str(self.predictor.device),
                level,
                "; ".join(problems) or "segmenting",
                values,
            )
        )

    def close(self) -> None:
        self.slot.close()
        self._worker.join(timeout=10.0)


class _DropMessage(logging.Filter):
    """Drops log records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _check_device(device: str, precision: str) -> None:
    """StartupError naming the device (or precision) when this machine cannot run it: loading the model
    there would fail with an error that seems to blame the model file."""
    import torch

    from pmp_ros.model.inference import resolve_device, resolve_precision

    try:
        resolved = resolve_device(device)
        if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        resolve_precision(precision, resolved)
    except ValueError as error:
        raise StartupError(str(error)) from None


def main(args: list[str] | None = None) -> int:
    """Console entry `pmp_node`. Exit code 0 on SIGINT/SIGTERM, 1 with one message line if startup fails."""
    configure_dds_environment()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = SegmenterNode()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except StartupError as error:
        print(f"{interface.NODE_NAME}: startup failed: {error}", file=sys.stderr, flush=True)
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
