"""How the node's subscriptions meet ordinary publishers (camera drivers, task planners, `ros2 topic pub`).

- Images, depth and camera info (`FollowingSubscription`): with the reliability setting `auto` (the
  default) the subscription is reliable while every publisher of its topic is, and best effort as soon as one
  offers best effort (a reliable subscription matches no best-effort publisher). Reliable matters: a
  publisher on Fast DDS's defaults (512 KB shared-memory segment) delivered no 640x480 frame to a best-effort
  subscription (0 of 50 in issue 25's measurement), every one to a reliable one.
- Instructions (`InstructionGate`): the node subscribes to each instruction topic twice, volatile (matches
  every reliable publisher, e.g. `ros2 topic pub` without flags) and transient local (also gets the last
  message a latched publisher sent before the node started). A message from a latched publisher arrives on
  both: the gate lets each message through once, and a latched message replayed to the node after a newer one
  was applied does not undo it.
- A publisher whose QoS no subscription can match is reported once per topic and policy, with the fix.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks, qos_policy_name_from_kind
from rclpy.qos import ReliabilityPolicy

from pmp_ros.ros import qos

RELIABILITY_SETTINGS = ("auto", "reliable", "best_effort")


def offered_reliability(publishers: Sequence) -> bool | None:
    """Whether a subscription should be reliable to receive from `publishers` (rclpy TopicEndpointInfo): False
    when any offers best effort (a reliable subscription would match none of those), True when all are
    reliable, None when there are none."""
    if not publishers:
        return None
    return all(info.qos_profile.reliability != ReliabilityPolicy.BEST_EFFORT for info in publishers)


class IncompatibleQosReport:
    """Says once per topic and QoS policy that a publisher cannot be matched, with the fix for that policy.

    fixes: policy name (RELIABILITY, DURABILITY, ...) -> the one-line fix, or None for a mismatch that is
    expected (another subscription of the node takes that publisher); a policy not listed is reported with
    a generic hint."""

    def __init__(self, logger, fixes: dict[str, str | None]) -> None:
        self.logger = logger
        self.fixes = fixes
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def callbacks(self, topic: Callable[[], str], on_event: Callable[[str], None] | None = None):
        """SubscriptionEventCallbacks for a subscription of `topic()` (called at event time: the resolved name).
        on_event(policy) runs first; rclpy's generic warning is replaced."""

        def incompatible(event: QoSRequestedIncompatibleQoSInfo) -> None:
            policy = qos_policy_name_from_kind(event.last_policy_kind)
            if on_event is not None:
                on_event(policy)
            self.report(topic(), policy)

        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    def report(self, topic: str, policy: str) -> None:
        fix = self.fixes.get(policy, "match the publisher's QoS to the subscription's (docs/node.md, QoS)")
        if fix is None:
            return
        with self._lock:
            if (topic, policy) in self._reported:
                return
            self._reported.add((topic, policy))
        self.logger.warning(
            f"a publisher on {topic} offers QoS this node cannot match ({policy}): none of its messages arrive; {fix}"
        )


class FollowingSubscription:
    """A KEEP_LAST(depth) volatile subscription whose reliability is `setting`: reliable, best_effort, or auto
    (follows the publishers of the topic: `offered_reliability`; reliable while there are none). With auto,
    `follow()` re-creates it when the publishers ask for the other reliability; the node calls it once a
    second, and at once when a publisher turns out incompatible."""

    def __init__(self, node, msg_type, topic: str, callback, depth: int, setting: str, fix: str) -> None:
        if setting not in RELIABILITY_SETTINGS:
            raise ValueError(f"reliability setting must be one of {RELIABILITY_SETTINGS}, got {setting!r}")
        self.node, self.msg_type, self.callback, self.depth, self.setting = node, msg_type, callback, depth, setting
        self.resolved_topic = node.resolve_topic_name(topic)
        self._report = IncompatibleQosReport(node.get_logger(), {"RELIABILITY": fix})
        offered = offered_reliability(node.get_publishers_info_by_topic(self.resolved_topic))
        self.reliable = setting == "reliable" or (setting == "auto" and offered is not False)
        self.subscription = self._create()

    @property
    def topic_name(self) -> str:
        return self.resolved_topic

    def _create(self):
        follows = self.setting == "auto"
        return self.node.create_subscription(
            self.msg_type,
            self.resolved_topic,
            self.callback,
            qos.profile(self.depth, reliable=self.reliable),
            # With auto a reliability mismatch is followed, not reported.
            event_callbacks=(
                SubscriptionEventCallbacks(incompatible_qos=lambda event: None)
                if follows
                else self._report.callbacks(lambda: self.resolved_topic)
            ),
        )

    def follow(self) -> bool:
        """With auto: re-create the subscription when its publishers' reliability asks for the other one;
        returns whether it did."""
        if self.setting != "auto":
            return False
        offered = offered_reliability(self.node.get_publishers_info_by_topic(self.resolved_topic))
        if offered is None or offered == self.reliable:
            return False
        self.node.destroy_subscription(self.subscription)
        self.reliable = offered
        self.subscription = self._create()
        self.node.get_logger().info(
            f"{self.resolved_topic}: subscription now {'reliable' if offered else 'best effort'}, as its "
            f"publishers offer"
            + ("" if offered else " (frames above the publisher's shared-memory segment may not arrive)")
        )
        return True

    def destroy(self) -> None:
        self.node.destroy_subscription(self.subscription)


class InstructionGate:
    """Which received instructions to apply, for one set of instruction topics subscribed twice (volatile and
    transient local): each message once, the newest in force.

    A message is known by its publisher and sequence number (rclpy MessageInfo; the source stamp where the
    middleware gives neither). One arriving on the transient-local subscription that is older (source
    stamp) than the newest applied is a replay of a latched message to a node that already follows a newer
    instruction, and is dropped; one on the volatile subscription is live and applies.
    """

    def __init__(self, memory: int = 256) -> None:
        self._seen: deque[tuple] = deque(maxlen=memory)
        self._newest_ns: int | None = None
        self._lock = threading.Lock()

    def admit(self, info: dict, latched: bool) -> bool:
        """Whether to apply a message with this rclpy MessageInfo, received on the transient-local
        (latched) or the volatile subscription."""
        gid = (info.get("publisher_gid") or {}).get("data")
        sequence = info.get("publication_sequence_number")
        source_ns = int(info.get("source_timestamp") or 0)
        key = (bytes(gid), sequence) if gid is not None and sequence is not None else ("stamp", source_ns)
        with self._lock:
            if key in self._seen:
                return False
            self._seen.append(key)
            if latched and self._newest_ns is not None and source_ns < self._newest_ns:
                return False
            self._newest_ns = source_ns if self._newest_ns is None else max(self._newest_ns, source_ns)
            return True


def instruction_subscriptions(node, msg_type, topic: str, on_message, report: IncompatibleQosReport, gate) -> list:
    """The pair of subscriptions to one instruction topic (volatile and transient local, reliable, depth 1);
    `on_message(msg)` runs for each message `gate` admits."""
    subscriptions = []
    for latched, profile in ((False, qos.INSTRUCTION_LIVE), (True, qos.INSTRUCTION)):

        def callback(msg, info, latched=latched) -> None:
            if gate.admit(info, latched):
                on_message(msg)

        subscription = node.create_subscription(
            msg_type,
            topic,
            callback,
            profile,
            event_callbacks=report.callbacks(lambda: node.resolve_topic_name(topic)),
        )
        subscriptions.append(subscription)
    return subscriptions
