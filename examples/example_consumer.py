"""Example downstream consumer: prints the 3D target of every labelled_points message.

python examples/example_consumer.py --ros-args -r labelled_points:=/perception/labelled_points
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node

from pmp_ros.ros import interface
from pmp_ros.ros.client import spin_until_shutdown
from pmp_ros_msgs.msg import LabelledPointArray


class TargetPrinter(Node):
    def __init__(self) -> None:
        super().__init__("pmp_target_printer")
        self.create_subscription(LabelledPointArray, interface.POINTS_TOPIC, self.on_points, 5)

    def on_points(self, msg: LabelledPointArray) -> None:
        stamp = f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}"
        # The node publishes points in decreasing score order: the first valid one is the best target.
        target = next((p for p in msg.points if p.position_valid), None)
        if target is None:
            print(f"[{stamp}] {msg.instruction!r}: no 3D target ({len(msg.points)} instance(s) in 2D)")
            return
        x, y, z = target.position.x, target.position.y, target.position.z
        print(
            f"[{stamp}] {msg.instruction!r}: {target.label} (score {target.score:.2f}) at "
            f"({x:.3f}, {y:.3f}, {z:.3f}) m in {msg.header.frame_id}, pixel ({target.u}, {target.v})"
        )


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = TargetPrinter()
    spin_until_shutdown(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
