"""The node with ordinary ROS parts around it (issue 25): publishers on the middleware's defaults in their own
processes (test/helpers/default_qos_peer.py: Fast DDS without the project's profile, rclpy's default QoS),
the node on its default parameters.

- camera frames of 640x480 and 1280x720 at 15 Hz from a default publisher all arrive, and each is answered or
  counted as dropped by the node's newest-frame rule;
- a best-effort (sensor-data) camera is followed: the image subscription turns best effort and frames arrive;
- an instruction from a default-QoS (volatile) publisher is applied; a latched one reaches a node started
  later, once; the latest of several publishers is in force;
- a best-effort instruction publisher is reported once, with the topic, the policy and the fix.
"""

import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from pmp_ros.ros import interface
from pmp_ros_msgs.msg import SegmentationResult

from ros_harness import NodeProcess, python_module, running_node, wait_until

PEER = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "helpers" / "default_qos_peer.py")
STARTUP_TIMEOUT_S = 180.0
FRAMES = 60
RATE_HZ = 15.0
INCOMPATIBLE = "offers QoS this node cannot match"


def _node(model_file, *args):
    """The node on its default parameters (the test model on the CPU)."""
    return python_module(
        "pmp_ros.ros.node", "--ros-args", "-p", f"model_path:={model_file}", "-p", "device:=cpu", *args
    )


def _peer(*args):
    import sys

    return [sys.executable, PEER, *args]


def _diagnostic(diagnostics: list, key: str) -> str | None:
    if not diagnostics:
        return None
    return dict((v.key, v.value) for v in diagnostics[-1].status[0].values).get(key)


def _instruction_applied(diagnostics, text):
    return lambda: _diagnostic(diagnostics, "instruction") == text


@pytest.mark.slow
@pytest.mark.parametrize("width, height", [(640, 480), (1280, 720)])
def test_frames_from_a_default_publisher_arrive_and_are_answered(model_file, ros_client, width, height):
    results = ros_client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    diagnostics = ros_client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    with running_node(_node(model_file), name="interop_node", timeout=STARTUP_TIMEOUT_S) as node:
        # rclpy's default QoS (depth 10, reliable, volatile), as a task planner publishes.
        ros_client.publisher(String, interface.INSTRUCTION_TOPIC, 10).publish(String(data="the red star"))
        wait_until(_instruction_applied(diagnostics, "the red star"), 60, what="the instruction to apply")
        command = ["images", "--width", str(width), "--height", str(height), "--rate", str(RATE_HZ)]
        with NodeProcess(_peer(*command, "--count", str(FRAMES)), name="camera") as camera:
            camera.wait_for_output(f"sent {FRAMES}", 120)

            def settled():
                received = int(_diagnostic(diagnostics, "images_received") or 0)
                answered = len({(r.header.stamp.sec, r.header.stamp.nanosec) for r in results})
                dropped = int(_diagnostic(diagnostics, "dropped_frames") or 0)
                return received == FRAMES and answered + dropped >= received and (received, answered, dropped)

            try:
                wait_until(settled, 120, interval=0.2, what="every frame received and answered or dropped")
            finally:
                print(node.output()[-3000:])
        received = int(_diagnostic(diagnostics, "images_received"))
        answered = len({(r.header.stamp.sec, r.header.stamp.nanosec) for r in results})
        dropped = int(_diagnostic(diagnostics, "dropped_frames"))
        assert received == FRAMES, f"{received} of {FRAMES} frames arrived"
        assert int(_diagnostic(diagnostics, "images_missing")) == 0
        assert answered + dropped >= 0.95 * FRAMES, (answered, dropped)
        assert answered > 0
        assert INCOMPATIBLE not in node.output()


@pytest.mark.slow
def test_a_best_effort_camera_is_followed(model_file, ros_client):
    diagnostics = ros_client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    with running_node(_node(model_file), name="interop_node", timeout=STARTUP_TIMEOUT_S) as node:
        command = ["images", "--width", "320", "--height", "240", "--best-effort", "--count", "200", "--rate", "15"]
        with NodeProcess(_peer(*command), name="camera"):
            wait_until(
                lambda: int(_diagnostic(diagnostics, "images_received") or 0) >= 10,
                120,
                interval=0.2,
                what="frames from a best-effort camera",
            )
        assert "subscription now best effort" in node.output()
        assert INCOMPATIBLE not in node.output()


@pytest.mark.slow
def test_instructions_from_volatile_and_latched_publishers(model_file, ros_client):
    diagnostics = ros_client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC)
    latched_text, live_text = "the green ring", "the blue cross"
    # Latched first, before the node exists: it reaches the node started later.
    with NodeProcess(_peer("instruction", latched_text, "--latched"), name="latched_planner") as latched:
        latched.wait_for_output("published", 60)
        with running_node(_node(model_file), name="interop_node", timeout=STARTUP_TIMEOUT_S) as node:
            wait_until(_instruction_applied(diagnostics, latched_text), 60, what="the latched instruction")
            # A volatile publisher on default QoS, later: the latest is in force.
            with NodeProcess(_peer("instruction", live_text), name="planner") as planner:
                planner.wait_for_output("published", 60)
                wait_until(_instruction_applied(diagnostics, live_text), 60, what="the volatile instruction")
            time.sleep(2.0)  # a duplicate would arrive within this
            output = node.output()
            assert _diagnostic(diagnostics, "instruction") == live_text
    # Each applied once although each latched message matches both of the node's subscriptions.
    assert output.count(f"instruction {latched_text!r}") == 1, output
    assert output.count(f"instruction {live_text!r}") == 1, output
    assert INCOMPATIBLE not in output and "incompatible QoS" not in output


@pytest.mark.slow
def test_a_best_effort_instruction_publisher_is_reported_once_with_the_fix(model_file):
    with running_node(_node(model_file), name="interop_node", timeout=STARTUP_TIMEOUT_S) as node:
        with NodeProcess(_peer("instruction", "the red star", "--best-effort", "--settle", "0"), name="planner"):
            node.wait_for_output(INCOMPATIBLE, 60)
            time.sleep(2.0)
        output = node.output()
    lines = [line for line in output.splitlines() if INCOMPATIBLE in line]
    assert len(lines) == 1, output
    assert f"/{interface.INSTRUCTION_TOPIC}" in lines[0] and "RELIABILITY" in lines[0]
    assert "--qos-reliability reliable" in lines[0]


@pytest.mark.slow
def test_the_segment_service_exists_before_configure_and_says_not_active(model_file, ros_client):
    from pmp_ros_msgs.srv import Segment

    with NodeProcess(_node(model_file, "-p", "autostart:=false"), name="unconfigured_node"):
        answer = ros_client.call(
            Segment, "/" + interface.SEGMENT_SERVICE, Segment.Request(instruction="the red star"), timeout=60
        )
    assert not answer.success and answer.error == "node not active (lifecycle state unconfigured)", answer.error
