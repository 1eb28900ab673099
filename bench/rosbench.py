"""ROS side of the node benchmarks: an isolated DDS domain, the node in its own process, and a client that
publishes frames and records when each result arrives.

Isolation (call `isolate` before anything starts rclpy): a random ROS_DOMAIN_ID (or --domain-id),
localhost-only discovery, ROS_HOME and the log folder in the run's temporary folder, and the package's Fast
DDS profile (large shared-memory segment). The node inherits this environment.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmp_ros.ros import interface, qos
from pmp_ros.ros.client import BackgroundNode, wait_until
from pmp_ros.ros.environment import isolate_environment

DISCOVERY_TIMEOUT_S = 30.0


def isolate(run_dir: Path, domain_id: int | None = None) -> int:
    """Give this process (and the node it starts) a private DDS domain and ROS home, always with the
    package's Fast DDS profile (as the node uses); returns the domain."""
    return isolate_environment(run_dir, domain_id, package_profile=True)


def node_parameters(model_file, threads: int, width: int, height: int) -> dict:
    """The node's parameters in a benchmark: the model on the CPU with `threads`, at width x height."""
    return {
        "model_path": str(model_file),
        "device": "cpu",
        "cpu_threads": threads,
        "inference_width": width,
        "inference_height": height,
    }


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (psutil when installed, else /proc/<pid>/status VmRSS)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError(f"no VmRSS for process {pid}") from None
    return psutil.Process(pid).memory_info().rss / 2**20


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """{thread id: (thread name, CPU seconds in user + kernel mode so far)} of a process's threads, from
    /proc/<pid>/task/<tid>/stat (Linux). Threads that end between listing and reading are left out."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on: utime, stime are 14, 15
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return out


def thread_cpu_rows(pid: int, before: dict, after: dict, frames: int, seconds: float) -> list[dict]:
    """Per thread of the node between two thread_cpu snapshots: CPU ms per frame (frames > 0) and the share
    of one core over `seconds`, busiest first; threads under 0.5 % of a core (but the main one) are pooled
    into one row. The main thread is the one that runs the executor; `pmp_inference` is the node's worker."""
    rows = []
    for tid, (name, total) in after.items():
        cpu_s = total - before.get(tid, (name, 0.0))[1]
        role = "executor (main)" if tid == pid else name
        rows.append({"thread": role, "tid": tid, "cpu_s": cpu_s})
    rows.sort(key=lambda r: -r["cpu_s"])
    quiet = [r for r in rows if r["cpu_s"] < 0.005 * seconds and r["tid"] != pid]
    busy = [r for r in rows if r not in quiet]
    if quiet:
        busy.append({"thread": f"{len(quiet)} other threads", "tid": None, "cpu_s": sum(r["cpu_s"] for r in quiet)})
    busy.append({"thread": "process total", "tid": pid, "cpu_s": sum(r["cpu_s"] for r in rows)})
    for r in busy:
        r["cpu_ms_per_frame"] = 1e3 * r["cpu_s"] / frames if frames else None
        r["core_share"] = r["cpu_s"] / seconds
    return busy


THREAD_COLUMNS = [
    ("thread", "thread", "s"),
    ("cpu_ms_per_frame", "CPU ms/frame", ".1f"),
    ("core_share", "share of a core", ".1%"),
]


@dataclass(frozen=True)
class Result:
    """One labelled_points message: the frame it answers (stamp key), its instruction, arrival time."""

    key: tuple[int, int]
    instruction: str
    arrived: float


class BenchClient(BackgroundNode):
    """Publishes images and instructions to the node; records results and the node's diagnostics.

    Latency is measured to the arrival of `labelled_points`, which the node publishes after
    `segmentation` for the same frame; `segmentation` is subscribed too (raw bytes) so the node really
    sends its label image, as it does for any consumer.
    """

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from pmp_ros_msgs.msg import LabelledPointArray, SegmentationResult

        super().__init__("pmp_bench_client")
        self._lock = threading.Condition()
        self.published: dict[tuple[int, int], tuple[int, float]] = {}  # stamp key -> (sequence, time)
        self.results: list[Result] = []
        self.segmentations = 0
        self.diagnostics: tuple[float, dict[str, str]] | None = None  # (arrival, values)
        self._sequence = 0
        self.image_pub = self.node.create_publisher(Image, interface.IMAGE_TOPIC, QoSProfile(depth=1))
        self.instruction_pub = self.node.create_publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION)
        self.node.create_subscription(LabelledPointArray, interface.POINTS_TOPIC, self._on_points, 10)
        self.node.create_subscription(
            SegmentationResult, interface.SEGMENTATION_TOPIC, self._on_segmentation, 10, raw=True
        )
        self.node.create_subscription(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)
        self._string = String

    def _on_points(self, msg) -> None:
        now = time.monotonic()
        with self._lock:
            self.results.append(Result((msg.header.stamp.sec, msg.header.stamp.nanosec), msg.instruction, now))
            self._lock.notify_all()

    def _on_segmentation(self, _raw: bytes) -> None:
        with self._lock:
            self.segmentations += 1

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == interface.diagnostics_status_name():
                with self._lock:
                    self.diagnostics = (time.monotonic(), {kv.key: kv.value for kv in status.values})

    def wait_connected(self) -> None:
        """Until the node subscribes to images and instructions and publishes results."""
        wait_until(
            lambda: (
                self.image_pub.get_subscription_count()
                and self.instruction_pub.get_subscription_count()
                and self.node.count_publishers(interface.POINTS_TOPIC)
            ),
            DISCOVERY_TIMEOUT_S,
            "the node's topics",
        )

    def set_instruction(self, text: str) -> float:
        """Publish an instruction; returns when (time.monotonic())."""
        now = time.monotonic()
        self.instruction_pub.publish(self._string(data=text))
        return now

    def publish(self, msg) -> tuple[int, int]:
        """Publish an image message with a fresh stamp; returns the stamp key its result will carry."""
        stamp_ns = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            self._sequence += 1
            self.published[key] = (self._sequence, time.monotonic())
        self.image_pub.publish(msg)
        return key

    def wait_result(self, key: tuple[int, int], timeout: float) -> Result | None:
        """The result for the frame `key`, or None after `timeout` seconds (frame lost or dropped)."""

        def find():
            return next((r for r in reversed(self.results) if r.key == key), None)

        with self._lock:
            self._lock.wait_for(find, timeout)
            return find()

    def latency(self, result: Result) -> float:
        """Seconds from publishing the frame to receiving its result."""
        return result.arrived - self.published[result.key][1]

    def fresh_diagnostics(self, timeout: float = 5.0) -> dict[str, str]:
        """Diagnostics values published after this call (the node publishes them at 1 Hz)."""
        since = time.monotonic()
        arrival = wait_until(
            lambda: self.diagnostics and self.diagnostics[0] > since and self.diagnostics, timeout, "fresh diagnostics"
        )
        return arrival[1]


def image_message(rgb: np.ndarray):
    """An rgb8 sensor_msgs/Image of the array, built once and re-stamped per publication."""
    from pmp_ros.ros.image_conversion import array_to_image

    msg = array_to_image(rgb, "rgb8")
    msg.header.frame_id = "camera_color_optical_frame"
    return msg


def stream(client: BenchClient, msg, rate_hz: float, duration_s: float, on_tick=None) -> int:
    """Publish `msg` at rate_hz for duration_s (absolute schedule, no drift); on_tick(elapsed) runs after
    each publication. Returns the number of frames published."""
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < duration_s:
        client.publish(msg)
        sent += 1
        if on_tick is not None:
            on_tick(elapsed)
        time.sleep(max(0.0, start + sent / rate_hz - time.monotonic()))
    return sent
