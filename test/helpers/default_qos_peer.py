"""A ROS program on the middleware's defaults, as an ordinary camera driver or task planner is: Fast DDS
without the project's profile (FASTDDS_DEFAULT_PROFILES_FILE removed before rclpy starts, so its 512 KB
shared-memory segment) and rclpy's default QoS (depth 10: reliable, volatile) unless told otherwise.

    python default_qos_peer.py images --width 640 --height 480 --rate 15 --count 60 [--best-effort]
    python default_qos_peer.py instruction "pick up the red star" [--latched | --best-effort]

It prints "sent N" (images) or "published" (instruction) when done and keeps its publisher alive until
interrupted (a latched publisher serves nodes that start later; reliable delivery can finish).
"""

import argparse
import os
import sys
import time

os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from pmp_ros.ros.client import spin_until_shutdown, wait_until  # noqa: E402
from pmp_ros.ros.qos import profile  # noqa: E402

DISCOVERY_TIMEOUT_S = 60.0


def _images(node, args) -> None:
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data if args.best_effort else 10)
    wait_until(lambda: publisher.get_subscription_count() > 0, DISCOVERY_TIMEOUT_S, f"a subscriber on {args.topic}")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    period = 1.0 / args.rate
    start = time.monotonic()
    for index in range(args.count):
        msg = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3)
        stamp_ns = int((index + 1) * period * 1e9)  # stamps at the camera's rate, distinct per frame
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = "camera"
        msg.data = pixels.tobytes()
        delay = start + index * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(msg)
    print(f"sent {args.count}", flush=True)


def _instruction(node, args) -> None:
    if args.latched:
        qos: QoSProfile | int = profile(1, reliable=True, transient_local=True)
    elif args.best_effort:
        qos = profile(10, reliable=False)
    else:
        qos = 10
    publisher = node.create_publisher(String, args.topic, qos)
    # A volatile message reaches only subscribers already there (a best-effort one matches none of the node's).
    if not (args.latched or args.best_effort):
        wait_until(lambda: publisher.get_subscription_count() > 0, DISCOVERY_TIMEOUT_S, f"a subscriber on {args.topic}")
        time.sleep(args.settle)
    publisher.publish(String(data=args.text))
    print("published", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    images = commands.add_parser("images")
    images.add_argument("--topic", default="image")
    images.add_argument("--width", type=int, default=640)
    images.add_argument("--height", type=int, default=480)
    images.add_argument("--rate", type=float, default=15.0)
    images.add_argument("--count", type=int, default=60)
    images.add_argument("--best-effort", action="store_true", help="sensor-data QoS, as some camera drivers")
    instruction = commands.add_parser("instruction")
    instruction.add_argument("text")
    instruction.add_argument("--topic", default="instruction")
    instruction.add_argument("--latched", action="store_true", help="transient local, depth 1")
    instruction.add_argument("--best-effort", action="store_true")
    # A volatile publisher's first message can miss a subscription matched a moment before (discovery is
    # two-way); a pause after the match, as a planner publishes some time after it started.
    instruction.add_argument("--settle", type=float, default=1.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("default_qos_peer")
    try:
        (_images if args.command == "images" else _instruction)(node, args)
    except TimeoutError as error:
        print(f"default_qos_peer: {error}", file=sys.stderr, flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
        sys.exit(1)
    spin_until_shutdown(node)


if __name__ == "__main__":
    main()
