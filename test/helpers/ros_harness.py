"""Harness for tests that use real ROS 2 communication.

- Every pytest run gets its own ROS_DOMAIN_ID, localhost-only discovery and a temporary ROS_HOME and
  log folder, so parallel runs on a shared machine never see each other and nothing is written to ~/.ros.
- NodeProcess runs a node in a separate process and always stops it (SIGINT, then SIGTERM, then SIGKILL).
- wait_until polls with a timeout: discovery usually takes 50 ms but seconds in about a quarter of
  runs, so tests never sleep for a fixed time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pmp_ros.ros import client, process
from pmp_ros.ros.environment import isolate_environment

DISCOVERY_TIMEOUT_S = 15.0
_run_dir: Path | None = None


def isolate_ros_environment() -> Path:
    """Give this test run a private DDS domain and ROS home; returns the run's temporary folder."""
    global _run_dir
    if _run_dir is None:
        _run_dir = Path(tempfile.mkdtemp(prefix="pmp_ros_test_"))
        isolate_environment(_run_dir)
    return _run_dir


def cleanup_run_dir() -> None:
    if _run_dir is not None:
        shutil.rmtree(_run_dir, ignore_errors=True)


def wait_until(
    predicate: Callable[[], object],
    timeout: float = DISCOVERY_TIMEOUT_S,
    interval: float = 0.02,
    what: str = "condition",
) -> object:
    """pmp_ros.ros.client.wait_until with the tests' discovery timeout as default."""
    return client.wait_until(predicate, timeout, what, interval)


class NodeProcess(process.ChildProcess):
    """A ROS program in its own process, logging into this test run's folder, stopped on exit.

    with NodeProcess([sys.executable, "-m", "pmp_ros.ros.node", ...], name="node") as proc:
        ...
        proc.output()   # everything it printed so far, for assertion messages
    """

    def __init__(self, argv: Sequence[str], name: str = "node", env: dict[str, str] | None = None):
        folder = isolate_ros_environment()
        super().__init__(
            argv,
            {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            folder / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log",
            name,
        )


@contextlib.contextmanager
def running_node(argv: Sequence[str], name: str = "node", timeout: float = 180.0):
    """The node of `argv` in its own process, ready (its startup line printed) inside the block; on exit it
    is stopped and must have ended cleanly: exit code 0 and no traceback in its output."""
    from pmp_ros.ros.node import READY_TEXT

    with NodeProcess(argv, name=name) as proc:
        proc.wait_for_output(READY_TEXT, timeout)
        yield proc
        code = proc.stop()
        output = proc.output()
    assert code == 0, output
    assert "Traceback" not in output


class RosTestClient(client.BackgroundNode):
    """An rclpy node in the test process, spun by a background executor thread (two threads: a slow
    callback does not hold up the others).

    Received messages are appended to per-topic lists; use wait_for_messages to wait for them.
    """

    def __init__(self, name: str = "pmp_test_client"):
        isolate_ros_environment()
        super().__init__(name, threads=2)
        self._lock = threading.Lock()
        self.received: dict[str, list] = {}

    def subscribe(self, msg_type, topic: str, qos=10, raw: bool = False) -> list:
        """Subscribe and return the (live) list that collects the messages."""
        messages = self.received.setdefault(topic, [])

        def on_message(msg, _messages=messages):
            with self._lock:
                _messages.append(msg)

        self.node.create_subscription(msg_type, topic, on_message, qos, raw=raw)
        return messages

    def publisher(self, msg_type, topic: str, qos=10, wait_for_subscribers: int = 1):
        """Create a publisher and wait until that many subscribers have been discovered."""
        pub = self.node.create_publisher(msg_type, topic, qos)
        if wait_for_subscribers:
            wait_until(
                lambda: pub.get_subscription_count() >= wait_for_subscribers,
                what=f"{wait_for_subscribers} subscriber(s) on {topic}",
            )
        return pub

    def call_async(self, srv_type, name: str, request):
        """Send a service request once the service is there; returns the future of its response."""
        client = self.node.create_client(srv_type, name)
        wait_until(client.service_is_ready, what=f"the service {name}")
        return client.call_async(request)

    def call(self, srv_type, name: str, request, timeout: float = DISCOVERY_TIMEOUT_S):
        """The response of a service to `request` (waits for the service, then for the answer)."""
        future = self.call_async(srv_type, name, request)
        wait_until(future.done, timeout, what=f"an answer from {name}")
        return future.result()

    def wait_for_publisher(self, topic: str, count: int = 1) -> None:
        wait_until(lambda: self.node.count_publishers(topic) >= count, what=f"a publisher on {topic}")

    def wait_for_messages(self, topic: str, count: int = 1, timeout: float = DISCOVERY_TIMEOUT_S) -> list:
        messages = self.received.setdefault(topic, [])
        wait_until(lambda: len(messages) >= count, timeout, what=f"{count} message(s) on {topic}")
        with self._lock:
            return list(messages)


def descendant_pids(pid: int) -> list[int]:
    """The processes below `pid` (its children, theirs, ...), read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        # Fields after the command name, which is in parentheses and may hold spaces: state, ppid, ...
        parent = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_running(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie has ended, only its parent has not reaped it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def python_module(module: str, *args: str) -> list[str]:
    """argv running `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def node_argv(parameters: Mapping[str, object], *ros_args: str) -> list[str]:
    """argv running the pmp_segmenter node with these parameters (name -> value, each `-p name:=value`) and
    other --ros-args before them (e.g. "-r", "__ns:=/head")."""
    settings = [x for name, value in parameters.items() for x in ("-p", f"{name}:={value}")]
    return python_module("pmp_ros.ros.node", "--ros-args", *ros_args, *settings)
