"""pmp-instruct, pmp-segment and pmp-watch (pmp_ros/ros/commands.py, issue 25) run as programs of their own
against the node running in another process over DDS: a namespaced node found with --namespace, a latched
instruction reaching a node started after the command, frames from a camera on the middleware's defaults
(test/helpers/default_qos_peer.py)."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ros_harness import NodeProcess, node_argv, python_module, running_node

PEER = str(Path(__file__).resolve().parents[1] / "helpers" / "default_qos_peer.py")
NAMESPACE = "/robot"
STARTUP_TIMEOUT_S = 180.0
COMMAND_TIMEOUT_S = 120.0


def _command(name: str, *args: str) -> list[str]:
    """argv of a command, as its console script runs it."""
    return python_module("pmp_ros.ros.commands", name, *args)


def _finished(proc: NodeProcess, timeout: float) -> int:
    """Its exit code once it ends (subprocess.TimeoutExpired past `timeout`)."""
    return proc.process.wait(timeout)


@pytest.fixture(scope="module")
def namespaced_node(model_file):
    argv = node_argv({"model_path": model_file, "device": "cpu"}, "-r", f"__ns:={NAMESPACE}")
    with running_node(argv, name="commands_node", timeout=STARTUP_TIMEOUT_S) as node:
        yield node


@pytest.mark.slow
def test_instruct_then_watch_prints_results_and_diagnostics(namespaced_node):
    with NodeProcess(_command("watch", "--namespace", NAMESPACE, "--count", "3"), name="watch") as watch:
        watch.wait_for_output("watching", COMMAND_TIMEOUT_S)
        with NodeProcess(_command("instruct", "the red star", "--namespace", NAMESPACE), name="instruct") as instruct:
            assert _finished(instruct, COMMAND_TIMEOUT_S) == 0, instruct.output()
        assert "applied on /robot/instruction: targets [red star]" in instruct.output()
        camera = [sys.executable, PEER, "images", "--topic", f"{NAMESPACE}/image", "--width", "320", "--height", "240"]
        with NodeProcess([*camera, "--rate", "5", "--count", "100"], name="camera"):
            watch.process.wait(COMMAND_TIMEOUT_S)  # --count 3: it exits after three results
    output = watch.output()
    assert watch.returncode == 0, output
    results = [line for line in output.splitlines() if line.startswith("result ")]
    assert len(results) == 3 and all("'the red star'" in line for line in results), output
    diagnostics = [line for line in output.splitlines() if line.startswith("diagnostics ")]
    assert diagnostics and "instruction='the red star'" in diagnostics[-1], output


@pytest.mark.slow
def test_watch_ends_cleanly_on_ctrl_c(namespaced_node):
    with NodeProcess(_command("watch", "--namespace", NAMESPACE), name="watch") as watch:
        watch.wait_for_output("diagnostics ", COMMAND_TIMEOUT_S)  # the node's own, found by its namespace
        code = watch.stop()  # SIGINT
    assert code == 0 and "Traceback" not in watch.output(), watch.output()


@pytest.mark.slow
def test_segment_an_image_file_writes_json_and_overlay(namespaced_node, tmp_path):
    picture = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), picture)
    out = tmp_path / "answer.json"
    argv = _command("segment", "red star", "--image", str(tmp_path / "photo.png"), "-o", str(out), "-n", NAMESPACE)
    with NodeProcess(argv, name="segment") as segment:
        assert _finished(segment, COMMAND_TIMEOUT_S) == 0, segment.output()
    record = json.loads(out.read_text())
    assert record["instruction"] == "red star" and record["prompts"] == ["red star"]
    assert record["size"] == {"width": 320, "height": 240}
    assert record["frame_id"] == "pmp_segment"  # the answer is on the file's picture
    for instance in record["instances"]:
        assert instance["label"] == "red star" and 0.0 <= instance["score"] <= 1.0
    overlay = cv2.imread(str(out.with_suffix(".png")))
    assert overlay is not None and overlay.shape[1] == 320 and overlay.shape[0] > 240  # the banner above


@pytest.mark.slow
def test_a_latched_instruction_reaches_a_node_started_later(model_file):
    with NodeProcess(_command("instruct", "the blue cross", "--timeout", "300"), name="instruct") as instruct:
        argv = node_argv({"model_path": model_file, "device": "cpu"})
        with running_node(argv, name="later_node", timeout=STARTUP_TIMEOUT_S) as node:
            assert _finished(instruct, COMMAND_TIMEOUT_S) == 0, instruct.output()
            node.wait_for_output("instruction 'the blue cross'", COMMAND_TIMEOUT_S)
    assert "applied on /instruction: targets [blue cross]" in instruct.output()


def test_instruct_without_a_node_says_so_and_fails():
    with NodeProcess(_command("instruct", "the red star", "--namespace", "/nobody", "--timeout", "3"), name="x") as p:
        assert _finished(p, COMMAND_TIMEOUT_S) == 1
    assert "pmp-instruct: timed out after 3.0 s waiting for a node subscribed to /nobody/instruction" in p.output()
