"""Every request, message and parameter is bounded where it enters the node (issue #26, item 1): segment
timeouts, structured instructions under the text's limits, prompt templates, the depth range, and received
text echoed shortened. One node in its own process over DDS (a tiny random model)."""

import math
import threading

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.language.limits import ECHO_LENGTH
from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros.ros.pipeline import SEGMENT_TIMEOUT_MAX_S
from pmp_ros_msgs.msg import Instruction
from pmp_ros_msgs.srv import Segment

import ros_harness
from ros_harness import NodeProcess, node_argv, wait_until

STARTUP_TIMEOUT_S = 180.0
GOOD = "pick up the red star"


class Node:
    """The running node and the test's client: publishers, diagnostics, parameter and service calls."""

    def __init__(self, proc, client):
        self.proc, self.client = proc, client
        self.diagnostics = client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
        self.image_pub = client.publisher(Image, interface.IMAGE_TOPIC)
        self.text_pub = client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION)
        self.structured_pub = client.publisher(Instruction, interface.STRUCTURED_INSTRUCTION_TOPIC, qos.INSTRUCTION)
        self._stamp = 0

    def send_image(self):
        self._stamp += 1
        msg = array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
        msg.header.stamp = Time(sec=100 + self._stamp // 10, nanosec=(self._stamp % 10) * 100_000_000)
        self.image_pub.publish(msg)

    def values(self, timeout=30.0) -> dict[str, str]:
        """The values of the next diagnostics status."""
        start = len(self.diagnostics)
        wait_until(lambda: len(self.diagnostics) > start, timeout, what="diagnostics")
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}

    def segment(self, instruction, timeout, stream=False):
        """The segment service's response; with stream, images are sent until it answers."""
        future = self.client.call_async(
            Segment, interface.SEGMENT_SERVICE, Segment.Request(instruction=instruction, timeout=timeout)
        )
        stop = threading.Event()
        if stream:

            def send():
                while not stop.wait(0.2):
                    self.send_image()

            threading.Thread(target=send, daemon=True).start()
        try:
            wait_until(future.done, 120, what="the segment service's answer")
        finally:
            stop.set()
        return future.result()

    def set_parameters(self, **values):
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return self.client.call(SetParameters, f"/{interface.NODE_NAME}/set_parameters", request).results


@pytest.fixture(scope="module")
def node(model_file):
    client = ros_harness.RosTestClient("pmp_bounds_test")
    argv = node_argv({"model_path": str(model_file), "device": "cpu", "cpu_threads": 1, "tracking": "false"})
    with ros_harness.running_node(argv, "bounds_node", STARTUP_TIMEOUT_S) as proc:
        yield Node(proc, client)
        client.close()


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, -1.0])
def test_a_timeout_that_is_no_number_of_seconds_is_refused_with_the_reason(node, timeout):
    response = node.segment(GOOD, timeout)
    assert not response.success and "timeout must be a finite number of seconds >= 0" in response.error


def test_a_huge_timeout_is_clamped_and_the_service_still_answers(node):
    # 1e10 s killed the service thread (threading.Event.wait overflowed): no later call was answered.
    assert node.segment(GOOD, 1e10, stream=True).success
    assert node.segment(GOOD, math.inf).error
    assert node.segment(GOOD, 0.0, stream=True).success
    (too_long,) = node.set_parameters(segment_timeout=SEGMENT_TIMEOUT_MAX_S + 1)
    assert not too_long.successful and "segment_timeout" in too_long.reason


def test_a_structured_instruction_meets_the_text_limits(node):
    before = int(node.values()["bad_instructions"])
    node.structured_pub.publish(Instruction(targets=["mug " * 20_000]))  # 80,000 characters, 20,000 words
    wait_until(lambda: int(node.values()["bad_instructions"]) > before, 30, what="the rejection")
    assert "too long" in node.proc.output()
    node.structured_pub.publish(Instruction(targets=["a very big red mug on a table"]))  # 7 words
    # Counted (its log line may fall in the first one's throttle period).
    wait_until(lambda: int(node.values()["bad_instructions"]) > before + 1, 30, what="the second rejection")


def test_a_rejected_huge_text_is_echoed_shortened(node):
    before = int(node.values()["bad_instructions"])
    node.text_pub.publish(String(data="x" * 1_000_000))
    wait_until(lambda: int(node.values()["bad_instructions"]) > before, 30, what="the rejection")
    values = node.values()
    assert len(values["instruction"]) <= ECHO_LENGTH + 40, len(values["instruction"])
    assert "1000000 characters" in values["instruction"]
    assert max(len(line) for line in node.proc.output().splitlines()) < 1000
    node.text_pub.publish(String(data=GOOD))
    wait_until(lambda: node.values()["instruction"] == GOOD, 30, what="the good instruction")


def test_prompt_templates_are_checked_when_set(node):
    (bad,) = node.set_parameters(prompt_templates=["{} {"])
    assert not bad.successful and "prompt_templates" in bad.reason and "{} {" in bad.reason
    (none,) = node.set_parameters(prompt_templates=["a photo"])
    assert not none.successful and "no {}" in none.reason
    (good,) = node.set_parameters(prompt_templates=["a photo of a {}."])
    assert good.successful
    (default,) = node.set_parameters(prompt_templates=[""])
    assert default.successful


def test_the_depth_range_is_a_parameter_whose_ends_must_be_ordered(node):
    (nearer,) = node.set_parameters(depth_max=2.0)
    assert nearer.successful
    (crossed,) = node.set_parameters(depth_min=5.0)
    assert not crossed.successful and "must be below depth_max (2.0)" in crossed.reason
    (too_far,) = node.set_parameters(depth_max=1e30)
    assert not too_far.successful
    (default,) = node.set_parameters(depth_max=20.0)
    assert default.successful


def test_unusable_prompt_templates_stop_the_start_with_one_line(model_file):
    argv = node_argv({"model_path": str(model_file), "device": "cpu", "prompt_templates": "['{} {']"})
    with NodeProcess(argv, name="bad_templates") as proc:
        wait_until(lambda: proc.returncode is not None, 120, what="the node to exit")
        output = proc.output()
    lines = [line for line in output.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, output
    assert "prompt_templates" in lines[0] and "{} {" in lines[0]


def test_max_instruction_length_governs_text_and_structured_instructions_alike(node):
    phrase = "star" * 200  # 800 characters in one word: over the default 500, within 2000
    (longer,) = node.set_parameters(max_instruction_length=2000)
    assert longer.successful
    try:
        node.text_pub.publish(String(data=f"pick up the {phrase}"))
        wait_until(lambda: node.values()["understood"].startswith("targets ['star"), 30, what="the long text")
        node.structured_pub.publish(Instruction(targets=["ring" * 200]))
        wait_until(lambda: node.values()["understood"].startswith("targets ['ring"), 30, what="the structured one")
    finally:
        (default,) = node.set_parameters(max_instruction_length=500)
        assert default.successful
