"""No thread of the node dies silently (issue #26, item 2): the worker and the segment service are supervised.

The node runs in this process (a managed SegmenterNode, spun by a background executor) so that a failure can
be injected into its worker loop and service: no real input makes them raise today (the inputs that did, a
segment timeout of 1e10 among them, are refused at the boundary now: test_node_bounds.py). The frames and
requests come over DDS from a test client, as usual.
"""

import threading

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.ros import interface, qos
from pmp_ros.ros.client import spin_until_context_down
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros_msgs.msg import SegmentationResult
from pmp_ros_msgs.srv import Segment

import ros_harness
from ros_harness import wait_until

GOOD = "pick up the red star"


class InjectedFault(RuntimeError):
    """The failure the tests inject."""


@pytest.fixture
def managed(model_file):
    """(SegmenterNode configured and active, the test client) in this process."""
    from pmp_ros.ros.node import SegmenterNode

    ros_harness.isolate_ros_environment()
    params = {"model_path": model_file, "device": "cpu", "autostart": "false", "tracking": "false", "cpu_threads": 1}
    rclpy.init(args=["--ros-args", *[x for k, v in params.items() for x in ("-p", f"{k}:={v}")]])
    node = SegmenterNode()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.add_node(node.service_node)
    spinning = threading.Thread(target=spin_until_context_down, args=(executor, node.context), daemon=True)
    spinning.start()
    client = ros_harness.RosTestClient("pmp_supervision_test")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield node, client
    finally:
        client.close()
        node.close()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
        spinning.join(timeout=10.0)


def _fail_next_takes(node, count):
    """Make the worker's next `count` calls to take a frame raise InjectedFault."""
    take, left = node.slots.take, [count]

    def failing_take(*args, **kwargs):
        if left[0] > 0:
            left[0] -= 1
            raise InjectedFault("injected into the worker loop")
        return take(*args, **kwargs)

    node.slots.take = failing_take


def _stream(client, stop):
    pub = client.publisher(Image, interface.IMAGE_TOPIC)
    client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION).publish(String(data=GOOD))
    index = 0
    while not stop.wait(0.2):
        index += 1
        msg = array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
        msg.header.stamp = Time(sec=10 + index // 10, nanosec=(index % 10) * 100_000_000)
        pub.publish(msg)


def _streaming(client):
    stop = threading.Event()
    threading.Thread(target=_stream, args=(client, stop), daemon=True).start()
    return stop


def test_a_worker_failure_is_counted_and_the_worker_serves_again(managed):
    node, client = managed
    results = client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    diagnostics = client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    _fail_next_takes(node, 1)  # the worker waits in take now: it fails at its next one, after the first frame
    stop = _streaming(client)
    try:
        wait_until(lambda: node.worker_supervisor.failures == 1, 60, what="the injected failure")
        seen = len(results)
        wait_until(lambda: len(results) > seen, 120, what="a result after the failure")
    finally:
        stop.set()
    assert not node.worker_supervisor.fault
    wait_until(
        lambda: any(kv.key == "worker_failures" and kv.value == "1" for a in diagnostics for kv in a.status[0].values),
        30,
        what="worker_failures 1 in the diagnostics",
    )


def test_a_worker_failing_again_and_again_takes_the_lifecycle_error_transition(managed):
    node, client = managed
    diagnostics = client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    _fail_next_takes(node, 1000)
    stop = _streaming(client)
    try:
        wait_until(lambda: node.worker_supervisor.fault, 60, what="the worker to be faulted")
        wait_until(lambda: node.lifecycle_state == "unconfigured", 60, what="the error transition")
    finally:
        stop.set()
    assert node.predictor is None  # on_error released the model

    def error_status():
        for array in diagnostics:
            status = array.status[0]
            if status.level == DiagnosticStatus.ERROR and "the inference worker failed 3 times" in status.message:
                return True
        return False

    wait_until(error_status, 30, what="an ERROR status naming the cause")
    response = client.call(Segment, interface.SEGMENT_SERVICE, Segment.Request(instruction=GOOD, timeout=0.5))
    assert not response.success and "the inference worker failed" in response.error


def test_a_service_failure_is_answered_with_its_cause_and_the_service_answers_again(managed):
    node, client = managed
    service = node.segment_service
    wait_for_segment = service.wait

    def failing(*args):
        service.wait = wait_for_segment  # once
        raise InjectedFault("injected into the segment service")

    service.wait = failing
    request = Segment.Request(instruction=GOOD, timeout=0.5)
    response = client.call(Segment, interface.SEGMENT_SERVICE, request)
    assert not response.success and "internal error: InjectedFault: injected" in response.error
    assert "test_node_supervision.py" in response.error and node.service_supervisor.failures == 1
    again = client.call(Segment, interface.SEGMENT_SERVICE, request)
    assert not again.success and "no camera frame within 0.50 s" in again.error  # answered: the thread lives
