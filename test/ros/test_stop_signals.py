"""Stopping pmp-eval-bag and pmp-demo with SIGINT (Ctrl-C: the terminal signals the whole process group)
or SIGTERM (kill: the tool's process only): the nodes they started stop too, and they exit with
128 + the signal number and one line, without a traceback.

pmp-eval-bag runs two bags in two worker processes, each with its own node (the nodes are the tool's
grandchildren); pmp-demo runs its node from its main process.
"""

import os
import signal
import subprocess
import sys

import pytest

from pmp_ros.bags.writer import write_bag
from pmp_ros.data.streams import SequenceConfig, procedural_stream
from pmp_ros.ros.node import READY_TEXT

from ros_harness import command_line, descendant_pids, process_running, wait_until

STARTUP_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 60.0
HOW = {"SIGINT": "process group", "SIGTERM": "process"}


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bags")
    frames = list(procedural_stream(SequenceConfig(width=96, height=72, seconds=1.0)))
    for name in ("first", "second"):
        write_bag(folder / name, frames, "mcap")
    return [folder / "first", folder / "second"]


def _node_pids(tool):
    return [pid for pid in descendant_pids(tool.pid) if "pmp_ros.ros.node" in command_line(pid)]


def _stop_while_nodes_run(argv, node_logs, nodes, signame, tmp_path, unset=()):
    """Start the tool (without the environment variables `unset`), wait until its nodes are ready, send the
    signal; returns (exit code, stdout, stderr, the nodes' pids)."""
    stdout, stderr = open(tmp_path / "stdout", "wb"), open(tmp_path / "stderr", "wb")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    tool = subprocess.Popen(
        argv, stdout=stdout, stderr=stderr, start_new_session=True, env={**env, "PYTHONUNBUFFERED": "1"}
    )
    pids = []
    try:

        def ready():
            assert tool.poll() is None, (tmp_path / "stderr").read_text()
            return all(log.is_file() and READY_TEXT in log.read_text() for log in node_logs)

        wait_until(ready, STARTUP_TIMEOUT_S, interval=0.1, what="the tool's nodes to be ready")
        pids = _node_pids(tool)
        assert len(pids) == nodes, pids
        signum = getattr(signal, signame)
        if HOW[signame] == "process group":
            os.killpg(tool.pid, signum)
        else:
            tool.send_signal(signum)
        code = tool.wait(EXIT_TIMEOUT_S)
    finally:
        if tool.poll() is None:
            os.killpg(tool.pid, signal.SIGKILL)
        for pid in set(pids + _node_pids(tool)):  # an orphaned node is no longer the tool's descendant
            if process_running(pid):
                os.kill(pid, signal.SIGKILL)
        stdout.close()
        stderr.close()
    return code, (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text(), pids


def _check_stopped(code, out, err, pids, signame):
    assert code == 128 + getattr(signal, signame), (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"stopped by {signame}" in lines[0], err
    assert "Traceback" not in out + err
    assert not [pid for pid in pids if process_running(pid)], "a node outlived the tool"


@pytest.mark.parametrize("signame", HOW)
def test_eval_bag_stops_its_nodes(tmp_path, model_file, bags, signame):
    out = tmp_path / "out"
    # Timed playback at a twentieth of real time: the bags take 20 s, far longer than the test needs.
    argv = [
        sys.executable,
        "-m",
        "pmp_ros.bags.evaluate",
        *map(str, bags),
        "--jobs",
        "2",
        "--rate",
        "0.05",
        "--model",
        str(model_file),
        "--device",
        "cpu",
        "--node-param",
        "cpu_threads:=1",
        "--no-progress",
        "--out",
        str(out),
    ]
    # Without ROS_DOMAIN_ID: the two bags then run at once, each node in a random domain (with it, one after
    # another in that domain).
    code, stdout, stderr, pids = _stop_while_nodes_run(
        argv, [out / bag.name / "node.log" for bag in bags], 2, signame, tmp_path, unset=("ROS_DOMAIN_ID",)
    )
    _check_stopped(code, stdout, stderr, pids, signame)
    assert "the node it started is stopped" in stderr


@pytest.mark.parametrize("signame", HOW)
def test_demo_stops_its_node(tmp_path, model_file, signame):
    out = tmp_path / "demo"
    argv = [
        sys.executable,
        "-m",
        "pmp_ros.demo",
        "--model",
        str(model_file),
        "--device",
        "cpu",
        "--frames-per-instruction",
        "20",
        "--out",
        str(out),
    ]
    code, stdout, stderr, pids = _stop_while_nodes_run(argv, [out / "node.log"], 1, signame, tmp_path)
    _check_stopped(code, stdout, stderr, pids, signame)
    assert not (out / "report.md").exists()
