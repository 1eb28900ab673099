"""The largest rgb8 frame that arrives over this machine's DDS, with best-effort and with reliable QoS.

    python bench/bench_frame_size.py                       # both reliabilities (~2 min)
    python bench/bench_frame_size.py --resolutions 320x240,640x480 --repeats 1              # smoke

A receiver in its own process subscribes to sensor_msgs/Image with the node's QoS (depth 1, the reliability
under test); this process publishes frames to it (best-effort: sensor-data QoS as camera drivers use;
reliable: reliable) with the package's Fast DDS profile (config/fastdds.xml), which the node uses too.
Separate processes, because Fast DDS hands samples between participants of one process without any
transport. Each probe publishes --repeats frames --interval s apart and counts those that arrive within
--timeout s after the last. Common camera resolutions are probed first, all of them; between the largest
that arrived every time and the first that did not, the frame height is bisected at the latter's width.
Above the limit frames arrive sometimes or never, and nothing on either side says so: the figures are in
docs/node.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib
import rosbench

TOPIC = "frame_size_probe"
RELIABILITIES = ("best_effort", "reliable")
# (width, height) of common cameras, ascending; 4096x4096 is the node's largest accepted image.
RESOLUTIONS = (
    (320, 240),
    (640, 480),
    (1280, 720),
    (1280, 1024),
    (1920, 1080),
    (2048, 1536),
    (2592, 1944),
    (3264, 2448),
    (4000, 3000),
    (4096, 4096),
)
READY = "receiver ready"
MAX_REPEATS = 20


def _qos(reliability: str, depth: int):
    from pmp_ros.ros import qos

    return qos.profile(depth, reliable=reliability == "reliable")


def receive(reliability: str) -> None:
    """Receiver process: prints the header stamp (probe id, repeat) of every frame that arrives."""
    import rclpy
    from sensor_msgs.msg import Image

    from pmp_ros.bags.messages import header_stamp
    from pmp_ros.ros.client import spin_until_shutdown

    rclpy.init()
    node = rclpy.create_node("pmp_frame_size_receiver")
    # raw: only the header is read, so a 50 MB frame costs no deserialisation here. The depth holds a whole
    # probe, so what is measured is the transport, not frames replaced in the history before being taken.
    node.create_subscription(
        Image,
        TOPIC,
        lambda data: print("got {} {}".format(*header_stamp(data)), flush=True),
        _qos(reliability, MAX_REPEATS),
        raw=True,
    )
    print(READY, flush=True)
    spin_until_shutdown(node)


class Prober:
    """This side: publishes probe frames and reads the receiver's report of what arrived."""

    def __init__(self, reliability: str, repeats: int, interval: float, timeout: float):
        import rclpy
        from rclpy.context import Context
        from sensor_msgs.msg import Image

        from pmp_ros.ros.process import die_with_parent_argv

        self.repeats, self.interval, self.timeout = repeats, interval, timeout
        self.received: set[tuple[int, int]] = set()
        self._cond = threading.Condition()
        # The receiver shares this process's stderr: bound to this process's life (and stopped in close()),
        # so that it never outlives it holding that pipe open for whoever reads it (a test, CI).
        self._process = subprocess.Popen(
            die_with_parent_argv([sys.executable, __file__, "--receiver", reliability]),
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("pmp_frame_size_prober", context=self.context)
        # Depth 5 as the sensor-data QoS a camera driver publishes with; the receiver keeps 1.
        self.publisher = self.node.create_publisher(Image, TOPIC, _qos(reliability, 5))
        self._image = Image
        self._probe = 0
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        """Waits until the receiver runs and a first frame reaches it."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready, rosbench.DISCOVERY_TIMEOUT_S):
                raise TimeoutError("the receiver did not start")
        rosbench.wait_until(
            lambda: self.publisher.get_subscription_count() > 0,
            rosbench.DISCOVERY_TIMEOUT_S,
            "the receiver's subscription",
        )
        # The publisher may see the subscription before the receiver sees the publisher, and until then
        # frames are lost: small frames until one arrives, so probes measure only their size.
        rosbench.wait_until(
            lambda: self.arrived(8, 8, repeats=1, timeout=0.5), rosbench.DISCOVERY_TIMEOUT_S, "a first frame to arrive"
        )

    _ready = False

    def _read(self) -> None:
        for line in self._process.stdout:
            with self._cond:
                if line.startswith(READY):
                    self._ready = True
                elif line.startswith("got "):
                    _, probe, repeat = line.split()
                    self.received.add((int(probe), int(repeat)))
                self._cond.notify_all()

    def arrived(self, width: int, height: int, repeats: int | None = None, timeout: float | None = None) -> int:
        """How many of `repeats` width x height rgb8 frames arrived."""
        from builtin_interfaces.msg import Time

        repeats = self.repeats if repeats is None else repeats
        self._probe += 1
        probe = self._probe
        msg = self._image(width=width, height=height, encoding="rgb8", step=3 * width)
        msg.data = bytes(3 * width * height)
        for repeat in range(repeats):
            msg.header.stamp = Time(sec=probe, nanosec=repeat)
            self.publisher.publish(msg)
            time.sleep(self.interval)

        def count() -> int:
            return sum(1 for p, _ in self.received if p == probe)

        with self._cond:
            self._cond.wait_for(lambda: count() == repeats, self.timeout if timeout is None else timeout)
            return count()

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            print("the receiver did not stop on SIGTERM within 10 s: killed", file=sys.stderr, flush=True)
            self._process.kill()
            self._process.wait()


def measure(reliability: str, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """(one row per probe, the largest frame that arrived every time)."""
    prober = Prober(reliability, args.repeats, args.interval, args.timeout)
    rows: list[dict] = []

    def probe(width: int, height: int, stage: str) -> bool:
        got = prober.arrived(width, height)
        rows.append(
            {
                "reliability": reliability,
                "stage": stage,
                "size": f"{width}x{height}",
                "mbytes": 3 * width * height / 1e6,
                "sent": args.repeats,
                "arrived": got,
            }
        )
        print(
            f"  {reliability}: {width}x{height} ({3 * width * height / 1e6:.2f} MB): {got}/{args.repeats}", flush=True
        )
        return got == args.repeats

    try:
        largest, failed = None, None
        for width, height in args.resolutions:  # all of them: above the limit some frames may still arrive
            if probe(width, height, "resolution"):
                largest = (width, height) if failed is None else largest
            elif failed is None:
                failed = (width, height)
        if failed is not None:
            # Bisect the height at the failing resolution's width, from the largest that arrived.
            width = failed[0]
            low = 0 if largest is None else largest[0] * largest[1] // width
            high = failed[1]
            for _ in range(args.bisect_steps):
                if high - low <= 1:
                    break
                middle = (low + high) // 2
                if probe(width, middle, "bisect"):
                    low = middle
                else:
                    high = middle
            if largest is None or width * low > largest[0] * largest[1]:
                largest = (width, low)
    finally:
        prober.close()
    limit = {
        "reliability": reliability,
        "largest": None if largest is None else f"{largest[0]}x{largest[1]}",
        "largest_bytes": None if largest is None else 3 * largest[0] * largest[1],
        "all_probed_arrived": failed is None,
    }
    return rows, limit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reliability", choices=(*RELIABILITIES, "both"), default="both")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        choices=range(1, MAX_REPEATS + 1),
        metavar="1..20",
        help="frames per probe; all must arrive",
    )
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between the frames of a probe")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the last frame")
    parser.add_argument("--bisect-steps", type=int, default=8)
    parser.add_argument(
        "--resolutions",
        type=lambda text: [benchlib.parse_size(size) for size in text.split(",")],
        default=RESOLUTIONS,
        help="WxH,WxH,... ascending (default: common cameras up to 4096x4096)",
    )
    parser.add_argument("--domain-id", type=int)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--receiver", choices=RELIABILITIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receive(args.receiver)
        return 0
    run_dir = Path(tempfile.mkdtemp(prefix="pmp_frame_size_"))
    domain = rosbench.isolate(run_dir, args.domain_id)
    import os

    info = benchlib.machine(
        {"ros_domain_id": domain, "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")}
    )
    benchlib.print_machine(info)
    rows, limits = [], []
    for reliability in RELIABILITIES if args.reliability == "both" else (args.reliability,):
        probe_rows, limit = measure(reliability, args)
        rows += probe_rows
        limits.append(limit)
    benchlib.print_table(
        "probes (rgb8 frames; arrived of sent)",
        rows,
        [
            ("reliability", "reliability", ""),
            ("stage", "stage", ""),
            ("size", "size", ""),
            ("mbytes", "MB", ".2f"),
            ("arrived", "arrived", "d"),
            ("sent", "sent", "d"),
        ],
    )
    benchlib.print_table(
        "largest rgb8 frame that arrived every time",
        limits,
        [
            ("reliability", "reliability", ""),
            ("largest", "size", ""),
            ("largest_bytes", "bytes", "d"),
            ("all_probed_arrived", "all probed arrived", ""),
        ],
    )
    benchlib.write_json(args.json, {"machine": info, "probes": rows, "limits": limits})
    return 0


if __name__ == "__main__":
    sys.exit(main())
