"""The pmp_segmenter node: ROS glue around model/inference.Predictor (behaviour documented in docs/node.md).

A managed (lifecycle) node: configure loads the model, activate subscribes and starts the worker,
deactivate unsubscribes and stops it (the model stays loaded), cleanup frees the model. With the
`autostart` parameter (default) it walks configure and activate itself.

Threads: a single-threaded executor runs the callbacks, which only store messages (the newest frame, the
instruction, depth; per camera, with the `cameras` parameter); one worker thread (`pmp_inference`) loads the
model on configure and, while active, converts, runs the model and publishes, taking the cameras' waiting
frames in turn, so a slow model never builds a queue and one model serves every camera. Every torch call
runs on that thread: a forward run from a second thread after the first has used torch's thread pool takes
about twice as long on the CPU. The segment service lives on a companion node (`<name>_segment`) spun by its
own multi-threaded executor: each request waits in one of its threads until the worker serves it with the
next frame, so requests block neither the image stream nor each other. (A multi-threaded executor for the
node itself held the GIL 47 % of the time while 30 Hz frames streamed in: docs/benchmarks.md.)
"""

from __future__ import annotations

# First: a stop signal during the imports below (seconds of them) then ends the process quietly (quiet_stop.py).
from pmp_ros.ros import quiet_stop  # isort: split

import logging
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.utilities import get_default_context
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

from pmp_ros import paths
from pmp_ros.geometry import PointEstimate, depth_in_metres, has_intrinsics, locate_instances
from pmp_ros.language import resolve
from pmp_ros.language.limits import ECHO_LENGTH, shorten
from pmp_ros.language.parse import InstructionParseError, ParsedInstruction, parse_instruction
from pmp_ros.model.inference import Prediction
from pmp_ros.objects3d import DEFAULT_PARAMS as OBJECTS3D_PARAMS
from pmp_ros.objects3d import measure_objects, stack_points
from pmp_ros.perception.tracking_stage import TrackingStage, above_threshold, detection_settings
from pmp_ros.ros import interface, matching, messages, qos
from pmp_ros.ros.client import spin_until_context_down
from pmp_ros.ros.environment import configure_dds_environment
from pmp_ros.ros.health import DepthHealth, FrameHealth
from pmp_ros.ros.image_conversion import ImageConversionError, compressed_to_rgb8, depth_to_array, image_to_rgb8
from pmp_ros.ros.input_watch import InputWatch, TopicState
from pmp_ros.ros.live_view import live_frame, open_live_view
from pmp_ros.ros.outputs import OnDemandOutputs
from pmp_ros.ros.pipeline import (
    ArrivalCounter,
    DepthCache,
    Frame,
    FrameSlot,
    RollingStats,
    RoundRobin,
    SegmentRequest,
    Target,
    instruction_problem,
    segment_timeout,
)
from pmp_ros.ros.supervision import Supervisor, cause
from pmp_ros_msgs.msg import Instruction, LabelledPointArray, Object3DArray, SegmentationResult
from pmp_ros_msgs.srv import Segment

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
# Segment-service requests served at once: each waits in a thread of the service node's executor for its
# frame; one thread more answers further requests with "busy" at once.
MAX_CONCURRENT_SEGMENTS = 4
SERVICE_EXECUTOR_THREADS = MAX_CONCURRENT_SEGMENTS + 1
WORKER_THREAD = "pmp_inference"
# open_clip's warning when it builds the CLIP towers without pretrained weights: the node's checkpoint
# holds every weight and replaces them right after, so the warning would only mislead.
OPEN_CLIP_RANDOM_INIT = "No pretrained weights loaded"


class StartupError(Exception):
    """The node cannot start (bad parameter, model file); main prints it as one line and exits non-zero."""


class _Stopped(BaseException):
    """The context went down (a stop signal) while the node waited for its model's thread. A BaseException:
    rclpy's lifecycle would turn an Exception into a transition that fails (the context is gone) with an
    ERROR line; this one leaves the transition to main, which ends the process."""


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


@dataclass
class FrameOutputs:
    """One frame's results for one instruction: what the topics publish and the segment service returns."""

    result: SegmentationResult
    points: LabelledPointArray
    objects: Object3DArray
    prediction: Prediction
    estimates: list[PointEstimate]  # the labelled points (overlay and markers draw them)
    cloud: PointCloud2 | None = None


class Camera:
    """One camera's stream (an entry of the `cameras` parameter, or the single camera): its newest frame,
    depth, camera info, tracks, publishers, subscriptions and diagnostics counters. The node's callbacks
    store its inputs; only the worker thread touches `tracking`."""

    def __init__(self, name: str, slot: FrameSlot) -> None:
        self.name = name  # its namespace, relative to the node's; "" = the single camera on the plain names
        self.slot = slot
        self.depth_cache = DepthCache()
        self.camera_info: CameraInfo | None = None
        self.tracking = TrackingStage()
        self.stats = RollingStats()
        self.arrivals = ArrivalCounter()
        self.bad_images = self.bad_instructions = self.stale_results = self.errors = self.bad_camera_info = 0
        # Whether its recent frames, and their depth, were usable (health.py: the diagnostics' WARN/ERROR).
        self.frame_health = FrameHealth()
        self.depth_health = DepthHealth()
        self.batched_frames = 0  # frames predicted in one forward with other cameras' frames
        # An instruction arrived on the camera's own instruction topics: the shared ones no longer apply to it.
        self.own_instruction = False
        # matching.FollowingSubscription's, while active (depth and info with use_depth only).
        self.image_subscription = self.depth_subscription = self.info_subscription = None
        self.depth_received = self.info_received = 0
        self.watch: InputWatch | None = None  # what its inputs lack, from activation on
        # Created at configure (objects_pub and cloud_pub with use_depth only).
        self.segmentation_pub = self.points_pub = None
        self.on_demand: OnDemandOutputs | None = None  # overlay, markers, label image, detections
        self.last_status: DiagnosticStatus | None = None  # its latest diagnostics (the live view shows them)
        self.objects_pub = self.cloud_pub = None

    def topic(self, name: str) -> str:
        return interface.camera_topic(self.name, name)

    def following(self) -> list:
        """Its camera-input subscriptions (matching.FollowingSubscription) while active."""
        return [s for s in (self.image_subscription, self.depth_subscription, self.info_subscription) if s]


class SegmenterNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__(interface.NODE_NAME)
        # Holds the segment service only, so that its blocking waits need no multi-threaded executor on this
        # node (see the module doc); same namespace, so the service's name resolves as if it were ours.
        self.service_node = Node(
            f"{self.get_name()}_segment",
            namespace=self.get_namespace(),
            context=self.context,
            start_parameter_services=False,
        )
        # Every torch call of the node runs on this one thread: loading, warm-up and the worker loop. Once
        # another thread (the executor's) has run a parallel torch region, the same forward run from a second
        # thread takes about twice as long on the CPU (an OpenMP team per calling thread; docs/benchmarks.md).
        # Made before the parameters are checked, which may fail: destroy_node shuts it down either way.
        self._torch_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=WORKER_THREAD, initializer=name_os_thread, initargs=(WORKER_THREAD,)
        )
        self.params = self._declare_parameters()
        self.predictor = None
        self.model_path = ""
        self.model_name = ""
        self.startup_error = ""  # why the last configure failed
        self._train_classes: tuple[str, ...] = ()
        names = tuple(name for name in self.params["cameras"] if name) or ("",)
        self.slots = RoundRobin(len(names))
        self.cameras = [Camera(name, slot) for name, slot in zip(names, self.slots.slots)]
        # The segment service serves the first camera (its request has no camera field).
        self.segment_camera = self.cameras[0]
        self.segment_requests = self.segment_timeouts = 0
        self._segments_waiting = 0
        self._segments_lock = threading.Lock()
        # Not rclpy.Node's own _subscriptions and _publishers, which these names would replace.
        self._input_subscriptions: list = []
        self._output_publishers: list = []
        # Instruction publishers no subscription can match (reliability; the durability mismatch of a volatile
        # publisher with the transient-local subscription is expected: the volatile one takes it).
        self._instruction_qos = matching.IncompatibleQosReport(
            self.get_logger(),
            {
                "RELIABILITY": "publish instructions reliable (ros2 topic pub --qos-reliability reliable)",
                "DURABILITY": None,
            },
        )
        self.live_view = None  # viz.live_view.LiveView while configured with foxglove_port
        self._worker: Future | None = None
        self._torch_jobs: list[Future] = []  # submitted to the model's thread (torch_busy)
        self._active = False
        # No thread dies silently (supervision.py): the worker restarts after a failure, or (failing again and
        # again) stops, the status turns ERROR and a managed node takes the lifecycle error transition; the
        # segment service answers a request that failed with the cause; the executors spin on.
        logger, stopping = self.get_logger(), lambda: not self.context.ok()
        self.worker_supervisor = Supervisor("the inference worker", logger, stopping=stopping)
        self.service_supervisor = Supervisor("the segment service", logger, stopping=stopping)
        self.executor_supervisor = Supervisor("the node's executor", logger, stopping=stopping)
        self.autostarting = False  # main is walking configure and activate (the autostart parameter)
        self._encoded = None  # (prompts, context, templates) whose text features the predictor holds
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, 10)
        # In every lifecycle state: outside active it answers "not active" (a client sees why, not silence).
        self.service_node.create_service(
            Segment, interface.SEGMENT_SERVICE, self._on_segment, callback_group=ReentrantCallbackGroup()
        )
        self.create_timer(1.0, self._publish_diagnostics)

    # -- lifecycle -----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.predictor, model_cfg = self._on_torch_thread(self._load_model)
        except Exception as error:  # rclpy would turn any other into a silent error transition
            self.startup_error = str(error) if isinstance(error, StartupError) else cause(error)
            if not self.autostarting:  # main reports an autostart failure as its one line and exits
                self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        self.startup_error = ""
        self.model_name = Path(self.model_path).name
        self._train_classes = tuple(model_cfg.train_classes)
        self.worker_supervisor.reset()
        self._create_publishers()
        self._open_live_view()
        self.get_logger().info(
            f"{READY_TEXT}: model {self.model_path} (all weights from the checkpoint; backend "
            f"{self.params['backend']}) on {self.predictor.device} "
            f"({str(self.predictor.dtype).removeprefix('torch.')}); "
            f"inference settings: {self._describe_inference()}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _on_torch_thread(self, function):
        """function() run on the model's thread; its result, once it is done, or _Stopped once the context is
        down (a stop: the load goes on, quiet_stop.finish does not wait for it for long)."""
        job = self._torch_thread.submit(function)
        self._torch_jobs.append(job)
        while True:
            try:
                return job.result(timeout=0.1)
            except TimeoutError:
                if not self.context.ok():
                    raise _Stopped from None

    def torch_busy(self) -> bool:
        """Whether the model's thread is still running something (a load, the worker's frame)."""
        self._torch_jobs = [job for job in self._torch_jobs if not job.done()]
        return bool(self._torch_jobs)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.slots.reopen()
        self._create_subscriptions()
        self._worker = self._torch_thread.submit(self.worker_supervisor.run, self._work)
        self._torch_jobs.append(self._worker)
        self._active = True
        self.get_logger().info("active: segmenting camera frames")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        if self.worker_supervisor.fault:  # _check_worker: the lifecycle error transition (then on_error)
            return TransitionCallbackReturn.ERROR
        self.get_logger().info("inactive: no subscriptions, the model stays loaded")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        self._release()
        if not self.context.ok():  # a transition cut short by a stop signal: not an error of the node
            return TransitionCallbackReturn.SUCCESS
        self.get_logger().error(
            f"error processing ({self.worker_supervisor.fault or 'a transition failed'}): unconfigured, the model "
            "released; configure again to restart"
        )
        return TransitionCallbackReturn.SUCCESS

    def _check_worker(self) -> None:
        """A managed node whose worker stopped (worker_supervisor faulted) takes the lifecycle error transition
        (deactivate returns ERROR, on_error unconfigures), so that its lifecycle manager sees it; with
        autostart the node stays up and reports ERROR. Called by the diagnostics timer (the executor's thread:
        the worker cannot wait for its own end)."""
        if self.worker_supervisor.fault and self._active and not self.params["autostart"]:
            self.trigger_deactivate()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_streaming(self, timeout: float = 10.0) -> None:
        """Unsubscribe and stop the worker, waiting `timeout` seconds at most for the frame it is on."""
        self._active = False
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions = []
        for camera in self.cameras:
            for subscription in camera.following():
                subscription.destroy()
            camera.image_subscription = camera.depth_subscription = camera.info_subscription = None
        self.slots.close()
        if self._worker is not None:
            wait([self._worker], timeout=timeout)
            self._worker = None
        for camera in self.cameras:
            camera.tracking.reset()

    def _open_live_view(self) -> None:
        """The Foxglove live view of the foxglove_port parameter (0: none); one that cannot open (a port in
        use) is said and the node goes on without it."""
        port, host = self.params["foxglove_port"], self.params["foxglove_host"]
        try:
            self.live_view = open_live_view(port, host)
        except Exception as error:
            self.get_logger().warning(f"no live view on {host}:{port}: {type(error).__name__}: {error}")
            return
        if self.live_view is not None:
            self.get_logger().info(
                f"live view: Foxglove on ws://{host}:{self.live_view.port}{_for_cameras(self.cameras[:1])}"
            )

    def _show(self, camera: Camera, rgb, outputs: FrameOutputs) -> None:
        """Send a published frame of the first camera to the live view, if one is open; a failure is logged,
        never the frame's."""
        if self.live_view is None or camera is not self.cameras[0] or not self.live_view.subscribed_topics():
            return
        objects = outputs.objects if self.params["use_depth"] else None
        try:
            self.live_view.publish(
                live_frame(rgb, outputs.result, outputs.points, objects, outputs.cloud, camera.last_status)
            )
        except Exception as error:
            self.get_logger().warning(
                f"live view failed: {type(error).__name__}: {error}", throttle_duration_sec=LOG_THROTTLE_S
            )

    def _release(self) -> None:
        if self.live_view is not None:
            self.live_view.close()
            self.live_view = None
        for publisher in self._output_publishers:
            self.destroy_publisher(publisher)
        self._output_publishers = []
        device = getattr(self.predictor, "device", None)
        self.predictor = None
        self._encoded = None
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    @property
    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

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
        reason = interface.combination_problem(values)
        if reason:
            raise StartupError(f"invalid parameter: {reason}")
        return values

    def _load_model(self):
        import torch

        from pmp_ros.model.inference import Predictor

        p = self.params
        torch.set_num_threads(interface.cpu_threads(p["cpu_threads"]))
        _check_device(p["device"], p["precision"])
        self.model_path = p["model_path"] or str(paths.model_file(DEFAULT_MODEL))
        if not Path(self.model_path).is_file():
            raise StartupError(f"model file not found: {self.model_path} (set the model_path parameter)")
        silence_random_init = _DropMessage(OPEN_CLIP_RANDOM_INIT)
        logging.getLogger().addFilter(silence_random_init)  # open_clip warns through the root logger
        try:
            if p["backend"] == "onnxruntime":
                predictor, model_cfg = self._load_onnx()
            else:
                predictor, model_cfg = Predictor.from_checkpoint(self.model_path, p["device"], p["precision"])
            self.checkpoint_inference = model_cfg.inference
            predictor.cfg = self._predictor_settings()
            if p["backend"] == "onnxruntime" and predictor.cfg.size != model_cfg.inference.size:
                raise StartupError(
                    f"the ONNX graph's input size is fixed at {model_cfg.inference.size[1]}x"
                    f"{model_cfg.inference.size[0]}: leave inference_width/height at 0 or export another size"
                )
            predictor.warmup()
        except StartupError:
            raise
        except Exception as error:  # any failure to load is fatal and reported as one line
            raise StartupError(f"cannot load model {self.model_path}: {type(error).__name__}: {error}") from None
        finally:
            logging.getLogger().removeFilter(silence_random_init)
        return predictor, model_cfg

    def _load_onnx(self):
        """(Predictor on ONNX Runtime, ModelConfig) for backend onnxruntime; the text tower stays in PyTorch."""
        from pmp_ros.deploy.runtime import load_onnx_predictor

        onnx_path = self.params["onnx_path"] or str(Path(self.model_path).with_suffix(".onnx"))
        if not Path(onnx_path).is_file():
            raise StartupError(
                f"ONNX graph not found: {onnx_path} (pmp-export-onnx {self.model_path} {onnx_path}, or set onnx_path)"
            )
        return load_onnx_predictor(
            self.model_path, onnx_path, self.params["device"], interface.cpu_threads(self.params["cpu_threads"])
        )

    def _create_subscriptions(self) -> None:
        p = self.params
        reliability = p["image_reliability"]  # images, depth and camera info alike (matching.FollowingSubscription)
        if reliability == "best_effort" and p["image_transport"] == "raw":
            self.get_logger().warning(
                f"image_reliability best_effort: raw frames larger than about {BEST_EFFORT_MAX_FRAME_MB} MB "
                f"(4000x3000 rgb8 is 36 MB) arrive sometimes or never over best-effort DDS with "
                f"config/fastdds.xml, and nothing reports it, and a publisher on Fast DDS's defaults delivers "
                f"no 640x480 frame at all; leave image_reliability at auto (docs/node.md)",
                once=True,
            )
        fix = "set image_reliability:=auto (follows the publishers) or best_effort"
        compressed = p["image_transport"] == "compressed"
        image_type, image_topic = (
            (CompressedImage, interface.IMAGE_TOPIC + "/compressed")
            if compressed
            else (
                Image,
                interface.IMAGE_TOPIC,
            )
        )
        # The shared instruction topics apply to every camera without instructions of its own.
        self._input_subscriptions = self._instruction_subscriptions(None)
        for camera in self.cameras:
            camera.image_subscription = matching.FollowingSubscription(
                self,
                image_type,
                camera.topic(image_topic),
                lambda msg, camera=camera: self._on_image(camera, msg, compressed),
                qos.CAMERA_DEPTH,
                reliability,
                fix,
            )
            if camera.name:  # the single camera's own instruction topics are the shared ones
                self._input_subscriptions += self._instruction_subscriptions(camera)
            if p["use_depth"]:
                camera.depth_subscription = matching.FollowingSubscription(
                    self,
                    Image,
                    camera.topic(interface.DEPTH_TOPIC),
                    lambda msg, camera=camera: self._on_depth(camera, msg),
                    qos.CAMERA_DEPTH,
                    reliability,
                    fix,
                )
                camera.info_subscription = matching.FollowingSubscription(
                    self,
                    CameraInfo,
                    camera.topic(interface.DEPTH_INFO_TOPIC),
                    lambda msg, camera=camera: self._on_camera_info(camera, msg),
                    1,
                    reliability,
                    fix,
                )
            camera.watch = InputWatch(time.monotonic())

    def _instruction_subscriptions(self, camera: Camera | None) -> list:
        """Subscriptions to a camera's own instruction topics (camera None: the shared ones), each twice
        (matching.instruction_subscriptions); one gate for the text and the structured topic, so the latest of
        either is in force."""
        namespace = camera.name if camera else ""
        gate = matching.InstructionGate()
        return [
            *matching.instruction_subscriptions(
                self,
                String,
                interface.camera_topic(namespace, interface.INSTRUCTION_TOPIC),
                lambda msg: self._on_instruction(camera, msg),
                self._instruction_qos,
                gate,
            ),
            *matching.instruction_subscriptions(
                self,
                Instruction,
                interface.camera_topic(namespace, interface.STRUCTURED_INSTRUCTION_TOPIC),
                lambda msg: self._on_structured_instruction(camera, msg),
                self._instruction_qos,
                gate,
            ),
        ]

    def _create_publishers(self) -> None:
        for camera in self.cameras:
            camera.segmentation_pub = self.create_publisher(
                SegmentationResult, camera.topic(interface.SEGMENTATION_TOPIC), 5
            )
            camera.points_pub = self.create_publisher(LabelledPointArray, camera.topic(interface.POINTS_TOPIC), 5)
            camera.on_demand = OnDemandOutputs(self, camera.topic, self.params["use_depth"])
            self._output_publishers += [camera.segmentation_pub, camera.points_pub, *camera.on_demand.publishers()]
            if self.params["use_depth"]:
                camera.objects_pub = self.create_publisher(Object3DArray, camera.topic(interface.OBJECTS_TOPIC), 5)
                camera.cloud_pub = self.create_publisher(PointCloud2, camera.topic(interface.OBJECT_POINTS_TOPIC), 2)
                self._output_publishers += [camera.objects_pub, camera.cloud_pub]

    # -- parameters ----------------------------------------------------------------------------------
    def _check_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            spec = interface.PARAMETERS_BY_NAME.get(parameter.name)
            reason = spec.validate(parameter.value) if spec else f"unknown parameter {parameter.name}"
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        reason = interface.combination_problem({**self.params, **{p.name: p.value for p in parameters}})
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _apply_parameters(self, parameters) -> None:
        changes = {parameter.name: parameter.value for parameter in parameters}
        self.params = {**self.params, **changes}
        if self.predictor is not None and any(name in (*INFERENCE_PARAMETERS, "tracking") for name in changes):
            self.predictor.cfg = self._predictor_settings()
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

    def _predictor_settings(self):
        """What the predictor runs with: the inference settings, with the score threshold lowered for the
        tracker while tracking (the tracks are published from the score threshold on, and the segment
        service's answers are cut to it: tracking_stage.above_threshold)."""
        settings = self._inference_settings()
        return detection_settings(settings) if self.params["tracking"] else settings

    def _describe_inference(self) -> str:
        """The inference settings in force and where each comes from, e.g. 'score_threshold 0.15 (checkpoint)'."""
        cfg, p, specs = self._inference_settings(), self.params, interface.PARAMETERS_BY_NAME

        def source(*names: str) -> str:
            return "checkpoint" if all(specs[n].is_unset(p[n]) for n in names) else "parameter"

        parts = [f"{name} {getattr(cfg, name)} ({source(name)})" for name in INFERENCE_PARAMETERS]
        tracking = (
            f"tracking on (instances from score {detection_settings(cfg).score_threshold})"
            if p["tracking"]
            else "tracking off"
        )
        return ", ".join(
            [f"size {cfg.size[1]}x{cfg.size[0]} ({source('inference_width', 'inference_height')})", *parts, tracking]
        )

    def _text_settings(self) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """(context classes, templates or None = the model's own) from the parameters ([''] = default)."""
        context = tuple(c for c in self.params["context_vocabulary"] if c) or self._train_classes
        templates = tuple(t for t in self.params["prompt_templates"] if t) or None
        return context, templates

    # -- inputs --------------------------------------------------------------------------------------
    def _on_image(self, camera: Camera, msg, compressed: bool) -> None:
        arrivals = camera.arrivals
        missing = arrivals.add(_stamp_seconds(msg.header.stamp))
        camera.slot.put(Frame(msg, compressed, time.monotonic()))
        if missing:
            subscription = camera.image_subscription
            likely = (
                "the subscription is reliable: the camera or its driver dropped them, or a network between"
                if subscription.reliable
                else "frames too large for best-effort QoS, or a lossy network"
            )
            self.get_logger().warning(
                f"{arrivals.missing} image(s) missing so far on {subscription.topic_name}: the camera's stamps "
                f"({arrivals.rate_hz():.1f} Hz) imply {arrivals.received + arrivals.missing}, {arrivals.received} "
                f"arrived ({likely})",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _on_depth(self, camera: Camera, msg: Image) -> None:
        camera.depth_received += 1
        camera.depth_cache.add(_stamp_seconds(msg.header.stamp), msg)

    def _on_camera_info(self, camera: Camera, msg: CameraInfo) -> None:
        camera.info_received += 1
        if has_intrinsics(msg.k):
            camera.camera_info = msg
            return
        # The last camera info is what the points use: an uncalibrated one means no 3D until a good one.
        camera.camera_info = None
        camera.bad_camera_info += 1
        self.get_logger().warning(
            f"camera info without a calibration on {camera.topic(interface.DEPTH_INFO_TOPIC)} (k = {list(msg.k)}; "
            f"fx and fy must be > 0): no 3D positions until a calibrated one arrives",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def _on_instruction(self, camera: Camera | None, msg: String) -> None:
        """An instruction on a camera's own topic (camera None: the shared topic)."""
        text = msg.data
        cameras = self._instructed_cameras(camera)
        if not text.strip():
            self._clear_target(cameras, text)
            return
        max_length = self.params["max_instruction_length"]
        problem = instruction_problem(text, max_length)
        if problem is None:
            try:
                self._set_instruction(cameras, text, parse_instruction(text, max_length=max_length))
                return
            except InstructionParseError as error:
                problem = str(error)
            except Exception as error:  # a parser bug must not take the node down with it
                problem = f"instruction parser failed: {type(error).__name__}: {error}"
        self._reject_instruction(cameras, shorten(text), text, problem)

    def _on_structured_instruction(self, camera: Camera | None, msg: Instruction) -> None:
        cameras = self._instructed_cameras(camera)
        if not (msg.targets or msg.excluded or msg.everything):
            self._clear_target(cameras, "")
            return
        try:
            parsed = messages.parsed_from_instruction(msg, self.params["max_instruction_length"])
        except InstructionParseError as error:
            self._reject_instruction(cameras, "structured instruction", "", str(error))
            return
        self._set_instruction(cameras, "", parsed)

    def _instructed_cameras(self, camera: Camera | None) -> list[Camera]:
        """The cameras an instruction applies to: the one whose own topic it came on (which then follows
        only its own), or, from the shared topic, those without instructions of their own."""
        if camera is None:
            return [c for c in self.cameras if not c.own_instruction]
        camera.own_instruction = True
        return [camera]

    def _set_instruction(self, cameras: list[Camera], text: str, parsed: ParsedInstruction) -> None:
        for camera in cameras:
            camera.slot.set_target(text, parsed)
        source = shorten(text) if text else "structured instruction"
        self.get_logger().info(f"instruction {source}{_for_cameras(cameras)} -> {parsed.describe()}")

    def _clear_target(self, cameras: list[Camera], text: str) -> None:
        for camera in cameras:
            camera.slot.set_target(text, None)
        self.get_logger().info(
            f"empty instruction{_for_cameras(cameras)}: target cleared, publishing nothing until the next one"
        )

    def _reject_instruction(self, cameras: list[Camera], what: str, text: str, problem: str) -> None:
        for camera in cameras:
            camera.slot.set_target(text, None)
            camera.bad_instructions += 1
        self.get_logger().warning(
            f"rejected instruction {what}{_for_cameras(cameras)}: {problem}; target cleared",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def _depth_for(self, camera: Camera, image_msg, shape: tuple[int, int]):
        """(depth array, K) matched to the colour frame, or (None, None) without usable depth."""
        camera_info, health = camera.camera_info, camera.depth_health
        if not self.params["use_depth"]:
            return None, None
        if camera_info is None:
            info_topic = camera.topic(interface.DEPTH_INFO_TOPIC)
            health.unusable(
                f"the camera info on {info_topic} has no calibration (k)"
                if camera.info_received
                else f"no camera info on {info_topic}"
            )
            return None, None
        nearest = camera.depth_cache.nearest(_stamp_seconds(image_msg.header.stamp))
        max_age = self.params["depth_max_age"]
        if nearest is None:
            health.unusable(f"no depth image on {camera.topic(interface.DEPTH_TOPIC)}")
            return None, None
        offset, depth_msg = nearest
        if abs(offset) > max_age:
            health.out_of_tolerance(offset, max_age)
            return None, None
        try:
            depth = depth_to_array(depth_msg)
            if depth.shape != shape:
                raise ImageConversionError(
                    f"depth image {depth.shape[1]}x{depth.shape[0]} does not match the "
                    f"colour image {shape[1]}x{shape[0]}"
                )
        except ImageConversionError as error:
            self._bad_input(camera, "depth image", error)
            health.unusable(f"bad depth image: {error}")
            return None, None
        health.used()
        # Metres, NaN outside the depth_min..depth_max range, so that every consumer (tracker, relations,
        # points, objects) sees the same readings.
        return depth_in_metres(depth, self._depth_range()), camera_info.k

    def _depth_range(self) -> tuple[float, float]:
        """The valid depth readings (metres, inclusive): the depth_min and depth_max parameters."""
        return self.params["depth_min"], self.params["depth_max"]

    def _bad_input(self, camera: Camera, what: str, error: Exception) -> None:
        camera.bad_images += 1
        self.get_logger().warning(
            f"ignored bad {what}{_for_cameras([camera])}: {error}", throttle_duration_sec=LOG_THROTTLE_S
        )

    # -- segment service ----------------------------------------------------------------------------
    def _on_segment(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        """_answer_segment's response; an exception there is counted and answered with its cause (never the
        end of the service's thread)."""
        try:
            return self._answer_segment(request, response)
        except Exception as error:
            self.service_supervisor.record(error)
            response.success = False
            response.error = f"internal error: {cause(error)}"
            return response

    def _answer_segment(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        """One result for the request's instruction on the first frame that arrives after it; the
        instruction topic's target is left as it is."""
        self.segment_requests += 1
        response.success = False
        if self.worker_supervisor.fault:
            response.error = f"the node failed: {self.worker_supervisor.fault}"
            return response
        if not self._active:
            response.error = f"node not active (lifecycle state {self.lifecycle_state})"
            return response
        try:
            requested_timeout = segment_timeout(request.timeout)
        except ValueError as error:
            response.error = str(error)
            return response
        text = request.instruction
        max_length = self.params["max_instruction_length"]
        problem = instruction_problem(text, max_length)
        if problem:
            response.error = problem
            return response
        try:
            parsed = parse_instruction(text, max_length=max_length)
        except InstructionParseError as error:
            response.error = str(error)
            return response
        with self._segments_lock:
            if self._segments_waiting >= MAX_CONCURRENT_SEGMENTS:
                response.error = f"busy: {MAX_CONCURRENT_SEGMENTS} segment requests are already waiting"
                return response
            self._segments_waiting += 1
        try:
            frame_timeout = requested_timeout or self.params["segment_timeout"]
            waiting = self._wait_for_segment(parsed, text, frame_timeout)
        finally:
            with self._segments_lock:
                self._segments_waiting -= 1
        if isinstance(waiting, str):
            response.error = waiting
            return response
        if waiting.error:
            response.error = waiting.error
            return response
        outputs: FrameOutputs = waiting.outputs
        response.success = True
        response.result, response.points, response.objects = outputs.result, outputs.points, outputs.objects
        return response

    def _wait_for_segment(self, parsed: ParsedInstruction, text: str, frame_timeout: float) -> SegmentRequest | str:
        """The served request, or why there is none: no camera frame within `frame_timeout` seconds, or a frame
        came but the worker, busy with earlier frames, did not take it within segment_model_timeout."""
        waiting = SegmentRequest(parsed, text, after=time.monotonic())
        camera = self.segment_camera
        topic = camera.image_subscription.topic_name if camera.image_subscription else camera.topic("image")
        camera.slot.add_request(waiting)
        if not waiting.done.wait(frame_timeout) and waiting.frame_arrived is None:
            if camera.slot.withdraw_request(waiting):
                self.segment_timeouts += 1
                return f"no camera frame within {frame_timeout:.2f} s on {topic}"
        model_timeout = self.params["segment_model_timeout"]
        if not waiting.done.wait(model_timeout) and camera.slot.withdraw_request(waiting):
            self.segment_timeouts += 1
            return (
                f"a camera frame arrived on {topic}, but the model, busy with earlier frames, did not take it "
                f"within {model_timeout:.2f} s (segment_model_timeout)"
            )
        waiting.done.wait()  # taken by the worker: it finishes it
        return waiting

    # -- worker --------------------------------------------------------------------------------------
    def _work(self) -> None:
        # One thread for every camera (one model). Each turn takes the waiting frame of every camera
        # (camera_batching) or of the next camera in turn (RoundRobin); frames of several cameras whose
        # instructions give the same prompts run as one batch.
        while (items := self.slots.take(every_camera=self._batching_cameras())) is not None:
            stream = []  # (camera, frame, target, rgb, depth, k) of the frames to segment for their stream
            for index, (frame, target, requests) in items:
                if target.parsed is None and not requests:  # no instruction yet, nobody asking
                    continue
                camera = self.cameras[index]
                converted = self._serve_requests(camera, frame, requests)
                if converted is not None and target.parsed is not None:
                    stream.append((camera, frame, target, *converted))
            for entry, batched in zip(stream, self._batched_predictions(stream)):
                camera = entry[0]
                try:
                    self._stream(*entry, batched)
                except Exception as error:  # keep serving frames; the diagnostics report the error count
                    self._frame_failed(camera, error)

    def _batching_cameras(self) -> bool:
        """Whether the worker takes every camera's waiting frame for one batch (the camera_batching parameter;
        auto: with the torch backend, whose batches raise the results per second (docs/benchmarks.md), not
        with onnxruntime, whose graph runs one frame at a time: a batch would only delay the first frames)."""
        setting = self.params["camera_batching"]
        return setting == "batch" or setting == "auto" and self.params["backend"] != "onnxruntime"

    def _serve_requests(self, camera: Camera, frame: Frame, requests: list[SegmentRequest]):
        """Convert a camera's frame and answer the segment requests waiting for it; returns (rgb, depth, k),
        or None when the frame cannot be used (counted and logged)."""
        try:
            rgb, depth, k = self._convert(camera, frame)
            for request in requests:
                request.outputs = self._segment(frame.msg, rgb, depth, k, request.parsed, request.instruction)
            if requests:
                camera.frame_health.used()
            return rgb, depth, k
        except ImageConversionError as error:
            self._bad_input(camera, "image", error)
            camera.frame_health.rejected(f"bad image: {error}")
            for request in requests:
                request.error = f"the camera frame could not be used: {error}"
        except Exception as error:  # keep serving frames; the diagnostics report the error count
            self._frame_failed(camera, error)
            for request in requests:
                request.error = request.error or f"segmentation failed: {type(error).__name__}: {error}"
        finally:
            for request in requests:
                request.done.set()
        return None

    def _frame_failed(self, camera: Camera, error: Exception) -> None:
        if not self.context.ok():  # the process is stopping: publishing failed because the context is gone
            return
        camera.errors += 1
        camera.frame_health.rejected(f"{type(error).__name__}: {error}", failed=True)
        self.get_logger().error(
            f"frame failed{_for_cameras([camera])}: {type(error).__name__}: {error}",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def _batched_predictions(self, stream: list[tuple]) -> list[tuple[Prediction, float] | None]:
        """Per stream entry (_work), its prediction from one forward over the frames of every entry with the
        same prompts, and that forward's seconds; None for an entry whose prompts no other entry shares (it is
        predicted alone in _segment). A failed batch is logged and its frames are predicted alone."""
        found: list[tuple[Prediction, float] | None] = [None] * len(stream)
        if len(stream) < 2:
            return found
        context, templates = self._text_settings()
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, (_, _, target, *_) in enumerate(stream):
            plan = resolve.plan_prompts(target.parsed, context)
            if plan.num_targets:
                groups.setdefault(tuple(plan.prompts), []).append(index)
        for prompts, members in groups.items():
            if len(members) < 2:
                continue
            start = time.monotonic()
            try:
                self._use_prompts(list(prompts), context, templates)
                predictions = self.predictor.predict([stream[i][3] for i in members], semantic=False)
            except Exception as error:
                self.get_logger().warning(
                    f"a batch of {len(members)} cameras' frames failed ({type(error).__name__}: {error}); "
                    "predicting them one by one",
                    throttle_duration_sec=LOG_THROTTLE_S,
                )
                continue
            seconds = time.monotonic() - start
            for index, prediction in zip(members, predictions):
                found[index] = (prediction, seconds)
                stream[index][0].batched_frames += 1
        return found

    def _convert(self, camera: Camera, frame: Frame):
        """(rgb uint8 [H,W,3], depth [H,W] or None, K or None) of a frame received from `camera`."""
        rgb = compressed_to_rgb8(frame.msg) if frame.compressed else image_to_rgb8(frame.msg)
        depth, k = self._depth_for(camera, frame.msg, rgb.shape[:2])
        return rgb, depth, k

    def _segment(
        self,
        msg,
        rgb,
        depth,
        k,
        parsed: ParsedInstruction,
        instruction: str,
        cloud: bool = False,
        tracking: TrackingStage | None = None,
        prediction: Prediction | None = None,
    ):
        """FrameOutputs of one frame for one instruction: segment its prompts (or take `prediction`, made
        for them with the predictor's settings in a batch of several cameras' frames), with `tracking` follow the
        instances with the camera stream's tracker (the stream only: an answer for one frame must not move its
        tracks), resolve the instruction on them, measure the chosen ones in 3D (with depth). An
        instruction with no target (only exclusions) gives empty results without running the model, so
        that a consumer sees there is nothing to act on."""
        context, templates = self._text_settings()
        plan = resolve.plan_prompts(parsed, context)
        track_ids: dict[int, int] = {}  # instance id -> track id
        if plan.num_targets:
            if prediction is None:
                self._use_prompts(plan.prompts, context, templates)
                prediction = self.predictor.predict([rgb], semantic=False)[0]
            score_threshold = self._inference_settings().score_threshold
            if tracking is not None:
                tracker_params = interface.tracker_params(self.params, publish_score=score_threshold)
                prediction, track_ids = tracking.track(prediction, rgb, depth, k, plan.prompts, tracker_params)
            else:
                prediction = above_threshold(prediction, score_threshold)
            prediction, resolution = resolve.apply(prediction, parsed, plan, depth, k)
        else:
            prediction = Prediction(np.zeros(rgb.shape[:2], np.uint16), [], None)
            resolution = resolve.resolve(parsed, plan, [])
        masks = [i.mask for i in prediction.instances]
        depth_range = self._depth_range()
        points = locate_instances(masks, depth, k, DEPTH_WINDOW, valid_range=depth_range)
        measured = None
        if depth is not None and k is not None and masks:
            measured = measure_objects(
                masks,
                depth,
                k,
                instance_ids=[i.id for i in prediction.instances],
                boxes=[i.box for i in prediction.instances],
                pixels=[(p.u, p.v) for p in points],
                cloud_rgb=rgb if cloud else None,
                voxel_m=self.params["object_voxel_size"],
                params=replace(OBJECTS3D_PARAMS, depth_range=depth_range),
            )
        header = msg.header
        return FrameOutputs(
            result=messages.segmentation_result(
                header, instruction, parsed, plan.targets, resolution.note, prediction, track_ids
            ),
            points=messages.labelled_points(header, instruction, prediction, points, track_ids),
            objects=messages.objects_3d(header, instruction, prediction, measured, track_ids),
            prediction=prediction,
            estimates=points,
            cloud=messages.object_cloud(header, stack_points(measured or [])) if cloud else None,
        )

    def _use_prompts(self, prompts, context, templates) -> None:
        """Give the predictor these prompts' text features (encoded only when they changed)."""
        if self._encoded != (prompts, context, templates):
            self._encoded = None  # until set_prompts has succeeded
            self.predictor.set_prompts(prompts, context, templates)
            self._encoded = (prompts, context, templates)

    def _stream(
        self, camera: Camera, frame: Frame, target: Target, rgb, depth, k, batched: tuple | None = None
    ) -> None:
        """Segment a camera's frame for its instruction and publish it in the camera's namespace, unless the
        instruction changed meanwhile. batched: (its prediction, the batch's forward seconds) when it was
        predicted in a batch of several cameras' frames (_batched_predictions)."""
        prediction, batch_s = batched or (None, 0.0)
        start = time.monotonic() - batch_s
        use_depth = self.params["use_depth"]
        tracking = camera.tracking if self.params["tracking"] else None
        if tracking is None:  # here, not where the parameter changes: only this thread may touch the tracks
            camera.tracking.reset()
        cloud = use_depth and camera.cloud_pub.get_subscription_count() > 0
        outputs = self._segment(
            frame.msg, rgb, depth, k, target.parsed, target.instruction, cloud, tracking, prediction
        )
        inference_s = time.monotonic() - start
        publications = [(camera.segmentation_pub, outputs.result), (camera.points_pub, outputs.points)]
        if use_depth:
            publications.append((camera.objects_pub, outputs.objects))
        if cloud:
            publications.append((camera.cloud_pub, outputs.cloud))
        publications += camera.on_demand.publications(
            frame.msg.header,
            rgb,
            outputs.result,
            outputs.objects if use_depth else None,
            outputs.prediction,
            outputs.estimates,
        )

        def publish() -> None:
            for publisher, message in publications:
                publisher.publish(message)

        if camera.slot.publish_if_current(target, publish):
            camera.stats.add(time.monotonic() - frame.received, inference_s)
            self._show(camera, rgb, outputs)
        else:
            camera.stale_results += 1
        camera.frame_health.used()

    def _input_problems(self, camera: Camera) -> dict[str, str]:
        """What the camera's inputs lack (input_watch), each new problem logged once; first the subscriptions
        follow their publishers' reliability. Called once a second by the diagnostics timer while active."""
        for subscription in camera.following():
            subscription.follow()

        def state(subscription, received: int) -> TopicState | None:
            if subscription is None:
                return None
            return TopicState(subscription.topic_name, self.count_publishers(subscription.topic_name), received)

        problems = camera.watch.problems(
            time.monotonic(),
            state(camera.image_subscription, camera.arrivals.received),
            state(camera.depth_subscription, camera.depth_received),
            state(camera.info_subscription, camera.info_received),
        )
        if "no image" in problems and not camera.image_subscription.reliable:
            problems["no image"] += (
                f" (best-effort subscription: frames larger than about {BEST_EFFORT_MAX_FRAME_MB} MB, or any "
                f"frame from a publisher on Fast DDS's defaults, may never arrive: image_reliability:=auto)"
            )
        for text in camera.watch.new(problems):
            self.get_logger().warning(text)
        return problems

    def _publish_diagnostics(self) -> None:
        """One status per camera, each on its own DiagnosticArray (the single camera's as before)."""
        self._check_worker()
        node_values = {"lifecycle_state": self.lifecycle_state, "model": self.model_name}
        node_values |= {
            "worker_failures": self.worker_supervisor.failures,
            "service_failures": self.service_supervisor.failures,
            "executor_failures": self.executor_supervisor.failures,
        }
        if self.predictor is not None:
            cfg = self._inference_settings()
            node_values |= {name: getattr(cfg, name) for name in INFERENCE_PARAMETERS}
            node_values |= {"inference_size": f"{cfg.size[1]}x{cfg.size[0]}", "device": self.predictor.device}
        for camera in self.cameras:
            self._publish_camera_diagnostics(camera, node_values)

    def _publish_camera_diagnostics(self, camera: Camera, node_values: dict) -> None:
        summary = camera.stats.summary()
        target = camera.slot.target
        input_problems = self._input_problems(camera) if self._active else {}
        values = {
            "rate_hz": f"{summary['rate']:.2f}",
            "latency_p50_ms": f"{summary['latency_p50_ms']:.1f}",
            "inference_p50_ms": f"{summary['inference_p50_ms']:.1f}",
            "dropped_frames": camera.slot.dropped,
            "images_received": camera.arrivals.received,
            "images_missing": camera.arrivals.missing,
            "camera_rate_hz": f"{camera.arrivals.rate_hz():.2f}",
            "bad_images": camera.bad_images,
            "bad_camera_info": camera.bad_camera_info,
            "bad_instructions": camera.bad_instructions,
            "stale_results": camera.stale_results,
            "errors": camera.errors,
            "batched_frames": camera.batched_frames,
        }
        if camera is self.segment_camera:
            values |= {"segment_requests": self.segment_requests, "segment_timeouts": self.segment_timeouts}
        values |= node_values | {
            "instruction": _echoed(target.instruction),
            "understood": target.parsed.describe() if target.parsed else "",
        }
        faults = [s.fault for s in (self.worker_supervisor, self.service_supervisor, self.executor_supervisor)]
        faults = [fault for fault in faults if fault]
        if not self._active:
            problems = [f"not active (lifecycle state {self.lifecycle_state})"]
            if self.startup_error:
                problems.append(f"configure failed: {self.startup_error}")
        else:
            problems = ([] if target.parsed else ["waiting for a valid instruction"]) + list(input_problems.values())
        frames = camera.frame_health.problem() if self._active else None
        if frames is not None:
            text, failed = frames  # failed: the node's own failure on every frame (ERROR), not bad input
            (faults if failed else problems).append(text)
        # input_watch says it already when no depth or camera info arrived at all
        if self._active and self.params["use_depth"] and not {"no depth image", "no camera info"} & set(input_problems):
            depth = camera.depth_health.problem()
            problems += [depth] if depth else []
        level = DiagnosticStatus.ERROR if faults else DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        problems = faults + problems
        array = messages.diagnostics(
            self.get_clock().now().to_msg(),
            interface.diagnostics_status_name(self.get_fully_qualified_name(), camera.name),
            str(values.get("device", self.params["device"])),
            level,
            "; ".join(problems) or "segmenting",
            values,
        )
        camera.last_status = array.status[0]
        self.diagnostics_pub.publish(array)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker (used at process exit, whatever the lifecycle state), waiting `timeout` seconds at
        most for its frame."""
        self._stop_streaming(timeout)
        if self.live_view is not None:
            self.live_view.close()
            self.live_view = None

    def destroy_node(self) -> None:
        self._torch_thread.shutdown(wait=False)
        self.service_node.destroy_node()
        super().destroy_node()


def _for_cameras(cameras: list[Camera]) -> str:
    """' for head, wrist' naming the cameras a log line is about; '' for the single camera."""
    names = [camera.name for camera in cameras if camera.name]
    return f" for {', '.join(names)}" if names else ""


def _echoed(text: str) -> str:
    """Received text as a diagnostics value: itself, or limits.shorten's quoted start and length when longer
    than limits.ECHO_LENGTH (a rejected 1 MB instruction must not make 1 MB diagnostics every second)."""
    return text if len(text) <= ECHO_LENGTH else shorten(text)


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` (15 bytes at most) in the OS too, so top -H, py-spy and
    bench/bench_node.py's per-thread table can tell it apart; Python's thread names stay inside Python."""
    try:
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name[:15])
    except OSError:  # not Linux, or /proc not mounted: only the label is lost
        pass


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


def main(args: list[str] | None = None) -> int:
    """Console entry `pmp_node`; ends the process (quiet_stop.finish). Exit code 0 on SIGINT/SIGTERM at any
    moment, quietly and within quiet_stop.STOP_LIMIT_S (quiet_stop.py); 1 with one message line if startup
    fails."""
    quiet_stop.install()
    own_args = list(sys.argv[1:] if args is None else args)
    own_args = own_args[: own_args.index("--ros-args")] if "--ros-args" in own_args else own_args
    if {"-h", "--help"} & set(own_args):  # before rclpy starts: --help must not start a node
        print(usage())
        return 0
    configure_dds_environment()
    quiet_stop.hand_over()
    try:
        rclpy.init(args=args)
    except Exception as error:  # e.g. a log folder it cannot create: one line, not rclpy's traceback
        return _startup_failed(f"cannot start ROS: {error} (is ROS_LOG_DIR or ROS_HOME writable?)")
    node = None
    service_executor = None
    code = 0
    try:
        if quiet_stop.received():  # between hand_over and rclpy's handlers: nothing stopped the context
            raise _Stopped
        node = SegmenterNode()
        if node.params["autostart"]:
            node.autostarting = True
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise StartupError(node.startup_error)
            node.trigger_activate()
            node.autostarting = False
        service_executor = MultiThreadedExecutor(num_threads=SERVICE_EXECUTOR_THREADS)
        service_executor.add_node(node.service_node)
        threading.Thread(
            target=node.service_supervisor.run,
            args=(lambda: spin_until_context_down(service_executor, node.context),),
            name="pmp_segment_service",
            daemon=True,
        ).start()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        quiet_stop.on_noted(_shut_down_context)
        if quiet_stop.received():  # came during the start-up, after the check above
            raise _Stopped
        node.executor_supervisor.run(lambda: spin_until_context_down(executor, node.context))
        if node.executor_supervisor.fault:  # logged; the node cannot go on without its executor
            code = 1
    except (KeyboardInterrupt, ExternalShutdownException, _Stopped):
        pass
    except Exception as error:  # StartupError, or anything else while starting: one line, unless stopping
        if not _stopping():
            code = _startup_failed(str(error) if isinstance(error, StartupError) else cause(error))
    finally:
        if node is not None:
            node.close(quiet_stop.STREAM_STOP_S)
            if service_executor is not None:
                service_executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
        rclpy.try_shutdown()
        # Now, not at the interpreter's exit, which finish skips: the DDS participant says goodbye to its peers.
        get_default_context().destroy()
    quiet_stop.finish(code, node.torch_busy if node is not None else None)


def _shut_down_context() -> None:
    """A noted stop signal ends the spin even when rclpy's own handler did not shut the context down."""
    if rclpy.ok():
        rclpy.try_shutdown()


def _stopping() -> bool:
    """Whether the process is being stopped (a signal came, or the context is down)."""
    return quiet_stop.received() or not rclpy.ok()


def _startup_failed(reason: str) -> int:
    print(f"{interface.NODE_NAME}: startup failed: {reason}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
