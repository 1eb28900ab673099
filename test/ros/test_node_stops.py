"""The node stops cleanly at every moment (issue #26, item 4): SIGINT or SIGTERM during its imports, while
it configures, right after it is ready, while frames stream: exit code 0, no traceback, no ERROR line; a log
folder it cannot create is one line. (How long each stop takes is bench/start_stop.py's measure: the tests
assert no times on this loaded machine.)"""

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros.ros.node import READY_TEXT
from pmp_ros_msgs.msg import SegmentationResult

from ros_harness import NodeProcess, node_argv, wait_until

STARTUP_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 60.0


def _argv(model_file):
    return node_argv({"model_path": str(model_file), "device": "cpu", "cpu_threads": 1})


def _stop(proc, signame):
    proc.process.send_signal(getattr(signal, signame))
    proc.process.wait(EXIT_TIMEOUT_S)
    return proc.process.returncode, proc.output()


def _assert_quiet(code, output):
    assert code == 0, output
    assert "Traceback" not in output, output
    assert not [line for line in output.splitlines() if "ERROR" in line or "startup failed" in line], output


def _loaded(pid, library):
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_during_the_imports_exits_0_without_a_word(model_file, signame):
    with NodeProcess(_argv(model_file), name=f"stop_importing_{signame}") as proc:
        # numpy's extension loaded: the node module runs its imports (numpy comes after quiet_stop's handler,
        # torch and rclpy, seconds of them, after numpy).
        wait_until(lambda: _loaded(proc.process.pid, "_multiarray_umath"), 120, interval=0.005, what="the imports")
        assert READY_TEXT not in proc.output()
        code, output = _stop(proc, signame)
    assert code == 0 and output.strip() == "", output  # Python's defaults: a KeyboardInterrupt traceback, or -15


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_while_it_configures_exits_0_quietly(model_file, ros_client, signame):
    with NodeProcess(_argv(model_file), name=f"stop_configuring_{signame}") as proc:
        # On the graph: the node exists and configure (the model's load) follows at once.
        wait_until(
            lambda: interface.NODE_NAME in ros_client.node.get_node_names(), 180, interval=0.005, what="the node"
        )
        code, output = _stop(proc, signame)
    _assert_quiet(code, output)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_right_after_the_ready_line_exits_0_quietly(model_file, signame):
    with NodeProcess(_argv(model_file), name=f"stop_ready_{signame}") as proc:
        proc.wait_for_output(READY_TEXT, STARTUP_TIMEOUT_S)
        code, output = _stop(proc, signame)
    _assert_quiet(code, output)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_while_frames_stream_exits_0_without_a_false_error(model_file, ros_client, signame):
    results = ros_client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC)
    with NodeProcess(_argv(model_file), name=f"stop_streaming_{signame}") as proc:
        proc.wait_for_output(READY_TEXT, STARTUP_TIMEOUT_S)
        images = ros_client.publisher(Image, interface.IMAGE_TOPIC)
        ros_client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION).publish(String(data="a red star"))
        stop = threading.Event()

        def stream():
            index = 0
            while not stop.wait(0.05):
                index += 1
                msg = array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
                msg.header.stamp = Time(sec=index // 20, nanosec=(index % 20) * 50_000_000)
                images.publish(msg)

        thread = threading.Thread(target=stream, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(results) >= 3, 120, what="results while streaming")
            code, output = _stop(proc, signame)  # frames still coming: a forward or a publication in flight
        finally:
            stop.set()
            thread.join()
    _assert_quiet(code, output)  # was: [ERROR] frame failed: RCLError ... context is invalid


def test_a_log_folder_it_cannot_create_is_one_line(model_file, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    env_log = {"ROS_LOG_DIR": str(blocker / "log")}
    with NodeProcess(_argv(model_file), name="unwritable_log", env=env_log) as proc:
        wait_until(lambda: proc.returncode is not None, 120, what="the node to exit")
        output = proc.output()
    lines = [line for line in output.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, output
    assert "cannot start ROS" in lines[0] and str(blocker) in lines[0] and "ROS_LOG_DIR" in lines[0]
    assert os.path.isfile(blocker)
