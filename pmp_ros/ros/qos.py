"""The QoS profiles of pmp_ros in one place: the node, the bag player, the benchmarks and the tests use them."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def profile(depth: int, reliable: bool = True, transient_local: bool = False) -> QoSProfile:
    """KEEP_LAST(depth), reliable or best effort, transient local or volatile."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE,
    )


# Instructions: reliable and latched (depth 1), so a node started later still gets the last instruction.
INSTRUCTION = profile(1, reliable=True, transient_local=True)
