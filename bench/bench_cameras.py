"""Several cameras on one node (the `cameras` parameter) against one node per camera, over real DDS.

    python bench/bench_cameras.py --random-model                                # 1, 2, 4 cameras, 30 s each
    python bench/bench_cameras.py --random-model --cameras 1 2 --duration 3     # smoke
    python bench/bench_cameras.py --cameras 1 2 4 --camera-batching batch round_robin

For each camera count N: N cameras (different world renders, --size) stream at --rate Hz each for --duration
s, (a) into one node with cameras [cam0, ..., camN-1] (one model, one worker; for N > 1 once per
--camera-batching setting: their frames as one batch, or in turn), (b)
into N nodes with one camera each (cameras [camI]: the same topics camI/image -> camI/labelled_points, N
models). Per camera: output rate and latency p50/p95 (publish -> labelled_points received); per setup: the
resident memory of the node process(es), summed, at the end of the stream.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from pmp_ros.ros import interface, qos
from pmp_ros.ros.client import BackgroundNode, wait_until

import benchlib
import rosbench

INSTRUCTION = "pick up the red star"
FIRST_RESULT_TIMEOUT_S = 120.0


class CamerasClient(BackgroundNode):
    """Publishes each camera's frames and records when each camera's results arrive."""

    def __init__(self, cameras: list[str]) -> None:
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from pmp_ros_msgs.msg import LabelledPointArray

        super().__init__("pmp_bench_cameras_client")
        self._lock = threading.Lock()
        self.sent: dict[tuple[str, int, int], float] = {}  # (camera, stamp sec, nanosec) -> publish time
        self.latencies: dict[str, list[float]] = {camera: [] for camera in cameras}
        self.image_pubs = {
            camera: self.node.create_publisher(
                Image, interface.camera_topic(camera, interface.IMAGE_TOPIC), QoSProfile(depth=1)
            )
            for camera in cameras
        }
        for camera in cameras:
            self.node.create_subscription(
                LabelledPointArray,
                interface.camera_topic(camera, interface.POINTS_TOPIC),
                lambda msg, camera=camera: self._on_points(camera, msg),
                10,
            )
        self.instruction_pub = self.node.create_publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION)
        self.instruction_pub.publish(String(data=INSTRUCTION))

    def _on_points(self, camera: str, msg) -> None:
        now = time.monotonic()
        with self._lock:
            sent = self.sent.get((camera, msg.header.stamp.sec, msg.header.stamp.nanosec))
            if sent is not None:
                self.latencies[camera].append(now - sent)

    def wait_connected(self, nodes: int) -> None:
        wait_until(
            lambda: (
                all(pub.get_subscription_count() for pub in self.image_pubs.values())
                and self.instruction_pub.get_subscription_count() >= nodes
            ),
            rosbench.DISCOVERY_TIMEOUT_S,
            "the node(s)' subscriptions",
        )

    def publish_all(self, messages: dict) -> None:
        """One frame per camera, each with a fresh stamp."""
        for camera, msg in messages.items():
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
            with self._lock:
                self.sent[(camera, msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()
            self.image_pubs[camera].publish(msg)

    def stream(self, messages: dict, rate_hz: float, until) -> None:
        """Publish every camera's frame at rate_hz until until() (absolute schedule, no drift)."""
        start, ticks = time.monotonic(), 0
        while not until():
            self.publish_all(messages)
            ticks += 1
            time.sleep(max(0.0, start + ticks / rate_hz - time.monotonic()))

    def reset(self) -> None:
        with self._lock:
            for latencies in self.latencies.values():
                latencies.clear()


def run_setup(
    args, run_dir: Path, domain: int, model_file: Path, count: int, shared: bool, batching: str = "auto"
) -> list[dict]:
    """Rows (one per camera) of `count` cameras on one node (shared; its camera_batching parameter
    `batching`) or on one node each."""
    from pmp_ros.ros.node import READY_TEXT
    from pmp_ros.ros.process import STARTUP_TIMEOUT_S, ChildProcess, ros_environment

    cameras = [f"cam{i}" for i in range(count)]
    width, height = args.inference_size
    params = rosbench.node_parameters(model_file, args.threads, width, height) | {
        "tracking": "false",
        "device": args.device,
        "camera_batching": batching,
    }
    groups = [cameras] if shared else [[camera] for camera in cameras]
    setup = f"1 node, {count} camera(s), {batching}" if shared else f"{count} node(s), 1 camera each"
    with ExitStack() as stack:
        processes = []
        for index, group in enumerate(groups):
            node_params = params | {"cameras": f"[{', '.join(group)}]"}
            argv = [sys.executable, "-m", "pmp_ros.ros.node", "--ros-args", "-r", f"__node:=pmp_segmenter_{index}"]
            argv += [x for name, value in node_params.items() for x in ("-p", f"{name}:={value}")]
            log = run_dir / f"{'shared_' + batching if shared else 'separate'}_{count}_{index}.log"
            processes.append(stack.enter_context(ChildProcess(argv, ros_environment(domain), log, f"node {index}")))
        for process in processes:
            process.wait_for_output(READY_TEXT, STARTUP_TIMEOUT_S)
        client = CamerasClient(cameras)
        stack.callback(client.close)
        client.wait_connected(len(processes))
        frames = {
            camera: rosbench.image_message(benchlib.scene_image(*args.size, seed=index))
            for index, camera in enumerate(cameras)
        }
        deadline = time.monotonic() + FIRST_RESULT_TIMEOUT_S
        client.stream(  # until every camera has results: models warm, instruction encoded
            frames, args.rate, lambda: all(client.latencies.values()) or time.monotonic() > deadline
        )
        client.reset()
        end = time.monotonic() + args.duration
        client.stream(frames, args.rate, lambda: time.monotonic() > end)
        rss = sum(rosbench.rss_mib(process.process.pid) for process in processes)
        time.sleep(1.0)  # the last frames' results
        rows = []
        for camera in cameras:
            latencies = list(client.latencies[camera])
            summary = benchlib.summary_ms(latencies)
            rows.append(
                {
                    "setup": setup,
                    "camera": camera,
                    "rate_out_hz": len(latencies) / args.duration,
                    "latency_p50_ms": summary.get("median_ms"),
                    "latency_p95_ms": summary.get("p95_ms"),
                    "rss_mib": rss,
                }
            )
        return rows


COLUMNS = [
    ("setup", "setup", "s"),
    ("camera", "camera", "s"),
    ("rate_out_hz", "results/s", ".2f"),
    ("latency_p50_ms", "latency p50 ms", ".1f"),
    ("latency_p95_ms", "latency p95 ms", ".1f"),
    ("rss_mib", "RSS MiB (all nodes)", ".0f"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    benchlib.add_common_args(parser)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4], help="camera counts")
    parser.add_argument("--size", type=benchlib.parse_size, default=(320, 240), help="camera image size")
    parser.add_argument("--inference-size", type=benchlib.parse_size, default=(320, 240))
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second of each camera")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per setup")
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: random in 1..101)")
    parser.add_argument("--device", default="cpu", help="the nodes' device parameter (cpu, cuda, auto)")
    parser.add_argument(
        "--camera-batching",
        nargs="+",
        choices=("auto", "batch", "round_robin"),
        default=["auto"],
        help="camera_batching settings of the one-node setups with several cameras (each is run)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="pmp_bench_cameras_") as folder:
        run_dir = Path(folder)
        domain = rosbench.isolate(run_dir, args.domain_id)
        model_file, description = benchlib.model_path(args, run_dir)
        width, height = args.inference_size
        info = benchlib.machine(
            {
                "model": description,
                "camera_size": "{}x{}".format(*args.size),
                "inference_size": f"{width}x{height}",
                "rate_hz": args.rate,
                "threads": args.threads,
                "device": args.device,
                "ros_domain_id": domain,
            }
        )
        benchlib.print_machine(info)
        rows = []
        for count in args.cameras:
            for batching in args.camera_batching if count > 1 else ["auto"]:
                rows += run_setup(args, run_dir, domain, model_file, count, True, batching)
            rows += run_setup(args, run_dir, domain, model_file, count, False)
        benchlib.print_table("cameras on one node vs one node per camera", rows, COLUMNS)
        benchlib.write_json(args.json, {"benchmark": "bench_cameras", "machine": info, "rows": rows})


if __name__ == "__main__":
    main()
