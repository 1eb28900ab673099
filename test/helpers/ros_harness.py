"""Harness for tests that use real ROS 2 communication.

- Every pytest run gets its own ROS_DOMAIN_ID, localhost-only discovery and a temporary ROS_HOME and
  log folder, so parallel runs on a shared machine never see each other and nothing is written to ~/.ros.
- NodeProcess runs a node in a separate process and always stops it (SIGINT, then SIGTERM, then SIGKILL).
- wait_until polls with a timeout: discovery usually takes 50 ms but seconds in about a quarter of
  runs, so tests never sleep for a fixed time.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pmp_ros.ros.environment import configure_dds_environment

DISCOVERY_TIMEOUT_S = 15.0
_run_dir: Path | None = None


def isolate_ros_environment() -> Path:
    """Give this test run a private DDS domain and ROS home; returns the run's temporary folder."""
    global _run_dir
    if _run_dir is None:
        _run_dir = Path(tempfile.mkdtemp(prefix="pmp_ros_test_"))
        # Domain ids 1..101 are valid on every platform; 0 is everyone's default.
        os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ["ROS_HOME"] = str(_run_dir / "ros_home")
        os.environ["ROS_LOG_DIR"] = str(_run_dir / "ros_log")
        os.environ.pop("ROS_STATIC_PEERS", None)
        configure_dds_environment()
    return _run_dir


def cleanup_run_dir() -> None:
    if _run_dir is not None:
        shutil.rmtree(_run_dir, ignore_errors=True)


def wait_until(predicate: Callable[[], object], timeout: float = DISCOVERY_TIMEOUT_S,
               interval: float = 0.02, what: str = "condition") -> object:
    """Poll predicate until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class NodeProcess:
    """A ROS program in its own process, stopped on exit whatever happened.

    with NodeProcess([sys.executable, "-m", "pmp_ros.ros.node", ...], name="node") as proc:
        ...
        proc.output()   # everything it printed so far, for assertion messages
    """

    def __init__(self, argv: Sequence[str], name: str = "node", env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.name = name
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        folder = isolate_ros_environment()
        self._log_path = folder / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "NodeProcess":
        self._log = open(self._log_path, "wb")
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=self.env, start_new_session=True)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (clean shutdown), then SIGTERM, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.process.poll() is not None:
                break
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        if not self._log.closed:
            self._log.close()
        return self.process.poll()

    def output(self) -> str:
        if not self._log.closed:  # stop() closes it; the file stays readable
            self._log.flush()
        return self._log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        def seen() -> bool:
            if self.returncode is not None and text not in self.output():
                raise RuntimeError(f"{self.name} exited with {self.returncode}:\n{self.output()}")
            return text in self.output()

        wait_until(seen, timeout, interval=0.05, what=f"{self.name} to print {text!r}")


class RosTestClient:
    """An rclpy node in the test process, spun by a background executor thread.

    Received messages are appended to per-topic lists; use wait_for_messages to wait for them.
    """

    def __init__(self, name: str = "pmp_test_client"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        isolate_ros_environment()
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self.received: dict[str, list] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

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
            wait_until(lambda: pub.get_subscription_count() >= wait_for_subscribers,
                       what=f"{wait_for_subscribers} subscriber(s) on {topic}")
        return pub

    def wait_for_publisher(self, topic: str, count: int = 1) -> None:
        wait_until(lambda: self.node.count_publishers(topic) >= count, what=f"a publisher on {topic}")

    def wait_for_messages(self, topic: str, count: int = 1, timeout: float = DISCOVERY_TIMEOUT_S) -> list:
        messages = self.received.setdefault(topic, [])
        wait_until(lambda: len(messages) >= count, timeout, what=f"{count} message(s) on {topic}")
        with self._lock:
            return list(messages)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)


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
