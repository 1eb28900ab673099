"""The rules of pmp_ros/ros/matching.py and input_watch.py without DDS: which instruction messages the node
applies (each once, a replayed latched one never over a newer one), which reliability follows the publishers,
and which input problems are said (each once)."""

from types import SimpleNamespace

from rclpy.qos import ReliabilityPolicy

from pmp_ros.ros.input_watch import NO_DEPTH_WARNING_S, NO_IMAGE_WARNING_S, InputWatch, TopicState
from pmp_ros.ros.matching import InstructionGate, offered_reliability


def _info(publisher: int, sequence: int, source_ns: int) -> dict:
    return {
        "publisher_gid": {"data": bytes([publisher] * 16), "implementation_identifier": "rmw_fastrtps_cpp"},
        "publication_sequence_number": sequence,
        "source_timestamp": source_ns,
    }


def test_a_message_on_both_subscriptions_is_applied_once():
    gate = InstructionGate()
    assert gate.admit(_info(1, 1, 100), latched=True)
    assert not gate.admit(_info(1, 1, 100), latched=False)  # the same message on the volatile subscription
    assert gate.admit(_info(1, 2, 200), latched=False)
    assert not gate.admit(_info(1, 2, 200), latched=True)


def test_a_replayed_latched_message_does_not_undo_a_newer_instruction():
    gate = InstructionGate()
    assert gate.admit(_info(2, 7, 500), latched=False)  # a planner's live instruction
    assert not gate.admit(_info(1, 1, 100), latched=True)  # an older latched one replayed to the node
    assert gate.admit(_info(1, 2, 600), latched=True)  # a newer latched one applies
    assert gate.admit(_info(3, 1, 50), latched=False)  # live messages apply in arrival order, whatever the clock


def test_without_publisher_ids_the_source_stamp_tells_messages_apart():
    gate = InstructionGate()
    assert gate.admit({"source_timestamp": 10}, latched=True)
    assert not gate.admit({"source_timestamp": 10}, latched=False)


def test_the_subscription_follows_the_publishers_reliability():
    def publisher(reliability):
        return SimpleNamespace(qos_profile=SimpleNamespace(reliability=reliability))

    reliable, best_effort = publisher(ReliabilityPolicy.RELIABLE), publisher(ReliabilityPolicy.BEST_EFFORT)
    assert offered_reliability([]) is None
    assert offered_reliability([reliable, reliable]) is True
    assert offered_reliability([reliable, best_effort]) is False


def test_input_problems_name_the_topic_and_are_logged_once():
    watch = InputWatch(started=0.0)
    assert watch.problems(1.0, TopicState("/image", 0, 0)) == {}
    problems = watch.problems(NO_IMAGE_WARNING_S + 1, TopicState("/image", 0, 0))
    assert list(problems) == ["no image publisher"] and "/image" in problems["no image publisher"]
    assert watch.new(problems) == [problems["no image publisher"]]
    assert watch.new(watch.problems(NO_IMAGE_WARNING_S + 2, TopicState("/image", 0, 0))) == []
    # Images arrive, depth does not: said once NO_DEPTH_WARNING_S after the first image.
    start = 20.0
    depth, info = TopicState("/depth/image", 0, 0), TopicState("/depth/camera_info", 1, 4)
    assert watch.problems(start, TopicState("/image", 1, 5), depth, info) == {}
    problems = watch.problems(start + NO_DEPTH_WARNING_S, TopicState("/image", 1, 50), depth, info)
    assert list(problems) == ["no depth image"] and "/depth/image" in problems["no depth image"]
    assert "depth:=" in problems["no depth image"]


def test_images_that_stop_are_said_while_the_publisher_stays():
    watch = InputWatch(started=0.0)
    watch.problems(1.0, TopicState("/image", 1, 3))
    watch.problems(2.0, TopicState("/image", 1, 3))
    problems = watch.problems(2.0 + NO_IMAGE_WARNING_S, TopicState("/image", 1, 3))
    assert list(problems) == ["no image"] and "but no image for" in problems["no image"]
    assert watch.problems(8.0, TopicState("/image", 1, 4)) == {}  # an image ends it
