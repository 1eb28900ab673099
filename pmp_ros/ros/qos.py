"""The QoS profiles of pmp_ros in one place: the node, the bag player, the benchmarks and the tests use them.

How the node's subscriptions meet other publishers' QoS (following a camera's reliability, instructions from
volatile and latched publishers alike): pmp_ros/ros/matching.py.
"""

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


# Instructions: reliable and latched (depth 1), so a node started later still gets the last instruction. The
# node subscribes with both: INSTRUCTION matches latched publishers only (and gets what they sent before the
# node started), INSTRUCTION_LIVE every reliable publisher, latched or not.
INSTRUCTION = profile(1, reliable=True, transient_local=True)
INSTRUCTION_LIVE = profile(1, reliable=True, transient_local=False)
# Camera inputs (image, depth, camera info): the reliability follows the image_reliability parameter
# (matching.FollowingSubscription). The node keeps only the newest frame (its callback stores it, the newest-frame
# slot counts the replaced ones as dropped), but the reader's history must hold what arrives while the executor
# waits for the worker: with a 1280x720 rgb8 15 Hz publisher on Fast DDS's defaults and the machine loaded (load
# average 11 on 2 cores), a reliable reader of depth 5 received 44 of 60 frames, of depth 10 (rclpy's default
# depth, what a camera driver publishes with) 60 of 60 (one run each, issue 25).
CAMERA_DEPTH = 10
