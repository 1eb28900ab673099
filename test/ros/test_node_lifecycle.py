"""The managed node and the one-shot segment service over real DDS, driven from this process with the
lifecycle_msgs services (change_state, get_state) and pmp_ros_msgs/srv/Segment.

A tiny random-weight model (test/helpers/model_fixtures.py) answers: the tests check the node's behaviour
(states, what is published when, which prompts a request was answered with), not accuracy.
"""

import os
import threading
import time

import numpy as np
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.language.parse import parse_instruction
from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros.ros.node import READY_TEXT
from pmp_ros_msgs.msg import SegmentationResult
from pmp_ros_msgs.srv import Segment

from ros_harness import NodeProcess, node_argv, wait_until

NODE = "/" + interface.NODE_NAME
# The node's CPU while inactive with a camera streaming at 10 Hz (fraction of one core): no subscription,
# no work; only the 1 Hz diagnostics and the executor waiting.
INACTIVE_CPU_LIMIT = 0.05


def _argv(model, **params):
    settings = {"model_path": model, "device": "cpu", "cpu_threads": 1, "score_threshold": 0.0, **params}
    return node_argv(settings)


def _call(client, srv_type, name, request, timeout=60.0):
    service = client.node.create_client(srv_type, name)
    wait_until(lambda: service.service_is_ready(), 60, what=f"the service {name}")
    future = service.call_async(request)
    wait_until(future.done, timeout, what=f"an answer from {name}")
    return future.result()


def _transition(client, transition_id):
    return _call(
        client, ChangeState, f"{NODE}/change_state", ChangeState.Request(transition=Transition(id=transition_id))
    )


def _state(client):
    return _call(client, GetState, f"{NODE}/get_state", GetState.Request()).current_state.id


def _cpu_seconds(pid):
    """User + system CPU seconds of a process (and its threads) from /proc/<pid>/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Camera:
    """Publishes frames at `rate_hz` in a thread while running."""

    def __init__(self, client, rate_hz=10.0):
        self.publisher = client.publisher(Image, interface.IMAGE_TOPIC, wait_for_subscribers=0)
        self.rate_hz, self._stop, self._thread, self.sent = rate_hz, threading.Event(), None, 0

    def __enter__(self):
        def run():
            rng = np.random.default_rng(0)
            while not self._stop.wait(1 / self.rate_hz):
                msg = array_to_image(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "rgb8")
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + self.sent // 10, (self.sent % 10) * 100_000_000
                self.publisher.publish(msg)
                self.sent += 1

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_lifecycle_states_results_and_idle_cpu(ros_client, model_file):
    results = ros_client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    instruction_pub = ros_client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION, wait_for_subscribers=0)
    with NodeProcess(_argv(model_file, autostart="false"), name="managed_node") as proc:
        assert _state(ros_client) == State.PRIMARY_STATE_UNCONFIGURED
        assert READY_TEXT not in proc.output()  # the model is loaded by configure, not at startup
        assert _transition(ros_client, Transition.TRANSITION_CONFIGURE).success
        assert READY_TEXT in proc.output() and _state(ros_client) == State.PRIMARY_STATE_INACTIVE
        instruction_pub.publish(String(data="pick up the red star"))
        with Camera(ros_client):
            time.sleep(2.0)  # discovery, and time for results that must not come
            before = _cpu_seconds(proc.process.pid)
            time.sleep(3.0)
            inactive_cpu = (_cpu_seconds(proc.process.pid) - before) / 3.0
            assert not results, "an inactive node published results"
            assert inactive_cpu < INACTIVE_CPU_LIMIT, f"inactive node used {inactive_cpu:.1%} of a core"

            assert _transition(ros_client, Transition.TRANSITION_ACTIVATE).success
            assert _state(ros_client) == State.PRIMARY_STATE_ACTIVE
            # The instruction is transient-local: the subscription made on activate still gets it.
            wait_until(lambda: results, 60, what="results after activate")
            assert results[-1].instruction == "pick up the red star"

            assert _transition(ros_client, Transition.TRANSITION_DEACTIVATE).success
            time.sleep(1.0)  # a frame in flight may still be published
            count = len(results)
            time.sleep(2.0)
            assert len(results) == count, "a deactivated node kept publishing"
        assert _transition(ros_client, Transition.TRANSITION_CLEANUP).success
        assert _state(ros_client) == State.PRIMARY_STATE_UNCONFIGURED
        assert "model released" in proc.output()
        code = proc.stop()
    assert code == 0 and "Traceback" not in proc.output(), proc.output()


def test_a_failed_configure_reports_why_and_stays_unconfigured(ros_client, tmp_path):
    missing = tmp_path / "absent.safetensors"
    with NodeProcess(_argv(missing, autostart="false"), name="managed_missing") as proc:
        assert not _transition(ros_client, Transition.TRANSITION_CONFIGURE).success
        assert _state(ros_client) == State.PRIMARY_STATE_UNCONFIGURED
        wait_until(lambda: "model file not found" in proc.output(), 30, what="the reason in the log")
        assert proc.returncode is None  # a managed node survives a failed transition
        proc.stop()


def test_segment_service_answers_each_request_with_its_own_instruction(ros_client, model_file):
    results = ros_client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    instruction_pub = ros_client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION, wait_for_subscribers=0)
    with NodeProcess(_argv(model_file), name="service_node") as proc:
        proc.wait_for_output(READY_TEXT, 180)
        instruction_pub.publish(String(data="find the green ring"))
        inactive_free = Segment.Request(instruction="the red star", timeout=0.5)
        # No camera yet: a clear timeout, quickly.
        started = time.monotonic()
        answer = _call(ros_client, Segment, "/" + interface.SEGMENT_SERVICE, inactive_free)
        assert not answer.success and "no camera frame within 0.50 s" in answer.error, answer.error
        assert time.monotonic() - started < 10
        bad = _call(ros_client, Segment, "/" + interface.SEGMENT_SERVICE, Segment.Request(instruction="please"))
        assert not bad.success and "no object phrase" in bad.error

        with Camera(ros_client):
            wait_until(lambda: results, 60, what="stream results")
            texts = ["pick up the red star", "the blue cross or the yellow square, not the green ring"]
            answers = [None, None]

            def ask(index):
                request = Segment.Request(instruction=texts[index], timeout=30.0)
                answers[index] = _call(ros_client, Segment, "/" + interface.SEGMENT_SERVICE, request)

            threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            stream_during = len(results)
            for thread in threads:
                thread.join(60)
            for text, answer in zip(texts, answers):
                assert answer is not None and answer.success, answer
                assert answer.result.instruction == text
                assert tuple(answer.result.prompts) == parse_instruction(text).targets
                assert answer.points.header == answer.result.header == answer.objects.header
                assert len(answer.points.points) == len(answer.result.instances) == len(answer.objects.objects)
            # The stream kept going and kept the topic's instruction.
            wait_until(lambda: len(results) > stream_during + 2, 60, what="stream results after the requests")
            assert {m.instruction for m in results[stream_during:]} == {"find the green ring"}
        code = proc.stop()
    assert code == 0 and "Traceback" not in proc.output(), proc.output()


def test_segment_service_refuses_while_inactive(ros_client, model_file):
    with NodeProcess(_argv(model_file, autostart="false"), name="service_inactive") as proc:
        assert _transition(ros_client, Transition.TRANSITION_CONFIGURE).success
        answer = _call(
            ros_client, Segment, "/" + interface.SEGMENT_SERVICE, Segment.Request(instruction="the red star")
        )
        assert not answer.success and "node not active (lifecycle state inactive)" in answer.error
        proc.stop()
