"""The pmp_segmenter node: ROS glue around the frame pipeline (perception.FramePipeline; behaviour documented
in docs/node.md).

A managed (lifecycle) node: configure loads the model, activate subscribes and starts the worker,
deactivate unsubscribes and stops it (the model stays loaded), cleanup frees the model. With the
`autostart` parameter (default) it walks configure and activate itself.

Threads: a single-threaded executor runs the callbacks, which only store messages (the newest frame, the
instruction, depth; per camera, with the `cameras` parameter: camera_stream.py, instruction_intake.py); one
worker thread (`pmp_inference`) loads the model on configure and, while active, converts, runs the frame
pipeline and publishes, taking the cameras' waiting frames in turn, so a slow model never builds a queue
and one model serves every camera. Every torch call runs on that thread: a forward run from a second thread
after the first has used torch's thread pool takes about twice as long on the CPU. The segment service
(segment_service.py) lives on a companion node (`<name>_segment`) spun by its own multi-threaded executor:
each request waits in one of its threads until the worker serves it with the next frame, so requests block
neither the image stream nor each other. (A multi-threaded executor for the node itself held the GIL 47 % of
the time while 30 Hz frames streamed in: docs/benchmarks.md.) The parameters are one NodeSettings value
(node_settings.py), replaced as a whole when a dynamic one changes; the worker takes it once per turn.
"""

from __future__ import annotations

# First: a stop signal during the imports below (seconds of them) then ends the process quietly (quiet_stop.py).
from pmp_ros.ros import quiet_stop  # isort: split

import gc
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.utilities import get_default_context

from pmp_ros import paths
from pmp_ros.perception.frame import FramePipeline
from pmp_ros.ros import interface, node_settings
from pmp_ros.ros.camera_stream import Camera, NodeStatus, camera_diagnostics
from pmp_ros.ros.client import spin_until_context_down
from pmp_ros.ros.environment import configure_dds_environment
from pmp_ros.ros.frame_handler import FrameHandler
from pmp_ros.ros.instruction_intake import InstructionIntake
from pmp_ros.ros.model_loading import load_model, name_os_thread
from pmp_ros.ros.node_settings import INFERENCE_PARAMETERS, StartupError
from pmp_ros.ros.pipeline import RoundRobin
from pmp_ros.ros.segment_service import SERVICE_EXECUTOR_THREADS, SegmentService
from pmp_ros.ros.supervision import Supervisor, cause
from pmp_ros_msgs.srv import Segment

DEFAULT_MODEL = "pmp_default.safetensors"
READY_TEXT = "pmp_segmenter ready"
WORKER_THREAD = "pmp_inference"


class _Stopped(BaseException):
    """The context went down (a stop signal) while the node waited for its model's thread. A BaseException:
    rclpy's lifecycle would turn an Exception into a transition that fails (the context is gone) with an
    ERROR line; this one leaves the transition to main, which ends the process."""


class SegmenterNode(LifecycleNode):
    """The pmp_segmenter node (module docstring): its lifecycle, its model and its worker loop."""

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
        self.settings = node_settings.declare(self)
        self.predictor = None
        self.frames: FrameHandler | None = None  # the worker's frame steps, while configured
        self.checkpoint_inference = None  # the checkpoint's InferenceConfig, while configured
        self.model_path = self.model_name = ""
        self.startup_error = ""  # why the last configure failed
        self.slots = RoundRobin(len(self.settings.camera_names))
        self.cameras = [Camera(self, name, slot) for name, slot in zip(self.settings.camera_names, self.slots.slots)]
        self.instructions = InstructionIntake(self, self.cameras, lambda: self.settings)
        # Not rclpy.Node's own _subscriptions and _publishers, which these names would replace.
        self._input_subscriptions: list = []
        self._output_publishers: list = []
        self._worker: Future | None = None
        self.torch_jobs: list[Future] = []  # submitted to the model's thread: the process's end waits for them
        self._active = False
        # No thread dies silently (supervision.py): the worker restarts after a failure, or (failing again and
        # again) stops, the status turns ERROR and a managed node takes the lifecycle error transition; the
        # segment service answers a request that failed with the cause; the executors spin on.
        logger, stopping = self.get_logger(), lambda: not self.context.ok()
        self.worker_supervisor = Supervisor("the inference worker", logger, stopping=stopping)
        self.service_supervisor = Supervisor("the segment service", logger, stopping=stopping)
        self.executor_supervisor = Supervisor("the node's executor", logger, stopping=stopping)
        self.autostarting = False  # main is walking configure and activate (the autostart parameter)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, 10)
        # The segment service serves the first camera (its request has no camera field). In every lifecycle
        # state: outside active it answers "not active" (a client sees why, not silence).
        self.segment_service = SegmentService(
            self.cameras[0], lambda: self.settings, self._segment_refusal, self.service_supervisor
        )
        self.service_node.create_service(
            Segment, interface.SEGMENT_SERVICE, self.segment_service.on_request, callback_group=ReentrantCallbackGroup()
        )
        self.create_timer(1.0, self._publish_diagnostics)

    # -- lifecycle -----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.model_path = self.settings.model_path or str(paths.model_file(DEFAULT_MODEL))
            self.predictor, model_cfg = self._on_torch_thread(lambda: load_model(self.model_path, self.settings))
        except Exception as error:  # rclpy would turn any other into a silent error transition
            self.startup_error = str(error) if isinstance(error, StartupError) else cause(error)
            if not self.autostarting:  # main reports an autostart failure as its one line and exits
                self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        self.startup_error = ""
        self.model_name = Path(self.model_path).name
        self.checkpoint_inference = model_cfg.inference
        self.frames = FrameHandler(
            FramePipeline(self.predictor), model_cfg.inference, tuple(model_cfg.train_classes), self.get_logger()
        )
        self.worker_supervisor.reset()
        for camera in self.cameras:
            self._output_publishers += camera.create_publishers(self.settings.use_depth)
        self.frames.open_live_view(self.settings, self.cameras[0])
        self.get_logger().info(
            f"{READY_TEXT}: model {self.model_path} (all weights from the checkpoint; backend "
            f"{self.settings.backend}) on {self.predictor.device} "
            f"({str(self.predictor.dtype).removeprefix('torch.')}); "
            f"inference settings: {self.settings.describe_inference(self.checkpoint_inference)}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _on_torch_thread(self, function):
        """function() run on the model's thread; its result, once it is done, or _Stopped once the context is
        down (a stop: the load goes on, quiet_stop.finish does not wait for it for long)."""
        job = self._torch_thread.submit(function)
        self.torch_jobs.append(job)
        while True:
            try:
                return job.result(timeout=0.1)
            except TimeoutError:
                if not self.context.ok():
                    raise _Stopped from None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.slots.reopen()
        self._create_subscriptions()
        self._worker = self._torch_thread.submit(self.worker_supervisor.run, self._work)
        self.torch_jobs.append(self._worker)
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
        if self.worker_supervisor.fault and self._active and not self.settings.autostart:
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
            camera.unsubscribe()
        self.slots.close()
        if self._worker is not None:
            wait([self._worker], timeout=timeout)
            self._worker = None
        for camera in self.cameras:
            camera.tracking.reset()

    def _release(self) -> None:
        if self.frames is not None:
            self.frames.close_live_view()
        for publisher in self._output_publishers:
            self.destroy_publisher(publisher)
        self._output_publishers = []
        device = getattr(self.predictor, "device", None)
        self.predictor = self.frames = None
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    @property
    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

    def _segment_refusal(self) -> str | None:
        """Why the segment service cannot be served now, or None."""
        if self.worker_supervisor.fault:
            return f"the node failed: {self.worker_supervisor.fault}"
        if not self._active:
            return f"node not active (lifecycle state {self.lifecycle_state})"
        return None

    # -- parameters ----------------------------------------------------------------------------------
    def _check_parameters(self, parameters) -> SetParametersResult:
        reason = node_settings.change_problem(self.settings, {p.name: p.value for p in parameters})
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _apply_parameters(self, parameters) -> None:
        changes = {parameter.name: parameter.value for parameter in parameters}
        self.settings = settings = self.settings.changed(changes)
        if self.predictor is not None and any(name in (*INFERENCE_PARAMETERS, "tracking") for name in changes):
            self.predictor.cfg = settings.predictor_inference(self.checkpoint_inference)
            self.get_logger().info(f"inference settings: {settings.describe_inference(self.checkpoint_inference)}")

    def _create_subscriptions(self) -> None:
        self._input_subscriptions = self.instructions.subscribe()
        for camera in self.cameras:
            camera.subscribe(self.settings)

    # -- worker --------------------------------------------------------------------------------------
    def _work(self) -> None:
        # One thread for every camera (one model). Each turn takes the waiting frame of every camera
        # (camera_batching) or of the next camera in turn (RoundRobin); frames of several cameras whose
        # instructions give the same prompts run as one batch. The settings are taken once per turn.
        frames = self.frames
        while (items := self.slots.take(every_camera=self.settings.batching_cameras)) is not None:
            settings = self.settings
            frames.use(settings)
            stream = []
            for index, (frame, target, requests) in items:
                if target.parsed is None and not requests:  # no instruction yet, nobody asking
                    continue
                camera = self.cameras[index]
                converted = frames.serve_requests(camera, frame, requests, settings)
                if converted is not None and target.parsed is not None:
                    stream.append(frames.stream_frame(camera, frame, target, converted))
            frames.stream(stream, settings)

    # -- diagnostics ---------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        """One status per camera, each on its own DiagnosticArray (the single camera's as before)."""
        self._check_worker()
        supervisors = (self.worker_supervisor, self.service_supervisor, self.executor_supervisor)
        values = {"lifecycle_state": self.lifecycle_state, "model": self.model_name}
        values |= {f"{name}_failures": s.failures for name, s in zip(("worker", "service", "executor"), supervisors)}
        if self.predictor is not None:
            cfg = self.settings.inference(self.checkpoint_inference)
            values |= {name: getattr(cfg, name) for name in INFERENCE_PARAMETERS}
            values |= {"inference_size": f"{cfg.size[1]}x{cfg.size[0]}", "device": self.predictor.device}
        faults = [s.fault for s in supervisors if s.fault]
        stamp, name = self.get_clock().now().to_msg(), self.get_fully_qualified_name()
        status = NodeStatus(values, faults, self._active, self.lifecycle_state, self.startup_error, stamp, name)
        for camera in self.cameras:
            served = camera is self.segment_service.camera
            segment = replace(status, segment_values=self.segment_service.diagnostics_values() if served else {})
            self.diagnostics_pub.publish(camera_diagnostics(camera, segment, self.settings))

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker (used at process exit, whatever the lifecycle state), waiting `timeout` seconds at
        most for its frame."""
        self._stop_streaming(timeout)
        if self.frames is not None:
            self.frames.close_live_view()

    def destroy_node(self) -> None:
        self._torch_thread.shutdown(wait=False)
        self.service_node.destroy_node()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry `pmp_node`; ends the process (quiet_stop.finish). Exit code 0 on SIGINT/SIGTERM at any
    moment, quietly and within quiet_stop.STOP_LIMIT_S (quiet_stop.py); 1 with one message line if startup
    fails."""
    quiet_stop.install()
    own_args = list(sys.argv[1:] if args is None else args)
    own_args = own_args[: own_args.index("--ros-args")] if "--ros-args" in own_args else own_args
    if {"-h", "--help"} & set(own_args):  # before rclpy starts: --help must not start a node
        print(node_settings.usage())
        return 0
    configure_dds_environment()
    quiet_stop.hand_over()
    try:
        rclpy.init(args=args)
    except Exception as error:  # e.g. a log folder it cannot create: one line, not rclpy's traceback
        return _startup_failed(f"cannot start ROS: {error} (is ROS_LOG_DIR or ROS_HOME writable?)")
    node = service_executor = service_thread = None
    code = 0
    try:
        if quiet_stop.received():  # between hand_over and rclpy's handlers: nothing stopped the context
            raise _Stopped
        service_executor = MultiThreadedExecutor(num_threads=SERVICE_EXECUTOR_THREADS)  # see shut_down_rclpy
        executor = SingleThreadedExecutor()
        node = SegmenterNode()
        quiet_stop.on_noted(lambda: quiet_stop.shut_down_rclpy(node.get_logger().name))
        if node.settings.autostart:
            node.autostarting = True
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise StartupError(node.startup_error)
            node.trigger_activate()  # prints the ready line
            node.autostarting = False
        service_executor.add_node(node.service_node)
        service_thread = threading.Thread(
            target=node.service_supervisor.run,
            args=(lambda: spin_until_context_down(service_executor, node.context),),
            name="pmp_segment_service",
            daemon=True,
        )
        service_thread.start()
        executor.add_node(node)
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
        if service_thread is not None:  # its spin ends with the context; joined, it holds nothing of ROS
            service_thread.join(1.0)
        # The DDS participant leaves (says goodbye to its peers, removes its shared-memory segment of up to
        # 16 MiB in /dev/shm) only when rclpy frees the last object holding the context. finish ends the
        # process with os._exit, which frees nothing: so drop this function's references now and collect.
        # Without this, every stop left its segments behind (test_a_stopped_node_leaves_no_shared_memory).
        jobs = node.torch_jobs if node is not None else []
        node = executor = service_executor = service_thread = None
        gc.collect()
        get_default_context().destroy()
    quiet_stop.finish(code, lambda: any(not job.done() for job in jobs))


def _stopping() -> bool:
    """Whether the process is being stopped (a signal came, or the context is down)."""
    return quiet_stop.received() or not rclpy.ok()


def _startup_failed(reason: str) -> int:
    print(f"{interface.NODE_NAME}: startup failed: {reason}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
