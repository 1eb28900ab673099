"""Output messages built from a hand-made Prediction, and the node's pure frame handling (pipeline)."""

import threading

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from pmp_ros.geometry import PointEstimate
from pmp_ros.language.parse import InstructionParseError, parse_instruction
from pmp_ros.model.inference import Instance, Prediction
from pmp_ros.ros import messages
from pmp_ros.ros.image_conversion import image_to_array
from pmp_ros.ros.pipeline import (
    ArrivalCounter,
    DepthCache,
    Frame,
    FrameSlot,
    RollingStats,
    RoundRobin,
    SegmentRequest,
    instruction_problem,
)

HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical")


def _prediction():
    label = np.zeros((20, 30), np.uint16)
    label[2:6, 3:9] = 1
    label[10:15, 20:30] = 2
    instances = [
        Instance(1, "red star", 0, 0.9, (3, 2, 8, 5), 24, label == 1),
        Instance(2, "green ring", 1, 0.7, (20, 10, 29, 14), 50, label == 2),
    ]
    return Prediction(label, instances, np.full((20, 30), -1, np.int32))


POINTS = [PointEstimate(5, 3, (0.1, -0.2, 1.5)), PointEstimate(25, 12, None)]


def test_segmentation_result():
    text = "pick up the red star and the green ring, not the blue heart"
    understood = parse_instruction(text)
    result = messages.segmentation_result(
        HEADER, text, understood, ["red star", "green ring"], "2 of 2 target instance(s), by score", _prediction()
    )
    assert result.header == HEADER and result.label_image.header == HEADER
    assert result.instruction == text and list(result.prompts) == ["red star", "green ring"]
    assert list(result.understood.targets) == ["red star", "green ring"]
    assert list(result.understood.excluded) == ["blue heart"] and result.resolution.startswith("2 of 2")
    np.testing.assert_array_equal(image_to_array(result.label_image), _prediction().label_image)
    first = result.instances[0]
    assert (first.id, first.label, first.prompt_index, first.area) == (1, "red star", 0, 24)
    assert first.score == pytest.approx(0.9)
    assert (first.roi.x_offset, first.roi.y_offset, first.roi.width, first.roi.height) == (3, 2, 6, 4)


@pytest.mark.parametrize(
    "text",
    [
        "pick up the second cup from the left",
        "grab the coffee mug next to the laptop",
        "person, car, dog",
        "pick up everything except the red star",
        "the green cross or the blue ring",
        "don't touch the knife",
    ],
)
def test_structured_instruction_round_trip(text):
    parsed = parse_instruction(text)
    assert messages.parsed_from_instruction(messages.instruction_message(parsed)) == parsed


def test_inconsistent_structured_instruction_is_rejected():
    msg = messages.instruction_message(parse_instruction("grab the mug next to the laptop"))
    msg.reference = ""
    with pytest.raises(InstructionParseError, match="relation needs a reference"):
        messages.parsed_from_instruction(msg)
    msg = messages.instruction_message(parse_instruction("person, car"))
    msg.every = [True]
    with pytest.raises(InstructionParseError, match="every"):
        messages.parsed_from_instruction(msg)
    msg.every, msg.order = [], "sideways"
    with pytest.raises(InstructionParseError, match="unknown order"):
        messages.parsed_from_instruction(msg)


def test_labelled_points():
    array = messages.labelled_points(HEADER, "go", _prediction(), POINTS)
    assert array.header == HEADER and array.instruction == "go"
    a, b = array.points
    assert (a.instance_id, a.label, a.u, a.v, a.position_valid) == (1, "red star", 5, 3, True)
    assert (a.position.x, a.position.y, a.position.z) == pytest.approx((0.1, -0.2, 1.5))
    assert (b.instance_id, b.position_valid) == (2, False)


def test_markers_only_for_valid_points():
    markers = messages.target_markers(HEADER, _prediction(), POINTS).markers
    assert markers[0].action == Marker.DELETEALL
    assert [m.type for m in markers[1:]] == [Marker.SPHERE, Marker.TEXT_VIEW_FACING]
    assert markers[1].pose.position.z == pytest.approx(1.5) and markers[1].header.frame_id == "camera_optical"
    assert "red star" in markers[2].text


def test_diagnostics():
    array = messages.diagnostics(Time(sec=1), "pmp", "cpu", DiagnosticStatus.WARN, "waiting", {"dropped": 3})
    status = array.status[0]
    assert status.level == DiagnosticStatus.WARN and status.values[0].key == "dropped"
    assert status.values[0].value == "3"


def test_frame_slot_keeps_only_the_newest_and_counts_drops():
    slot = FrameSlot()
    slot.set_target("x", parse_instruction("x"))
    for i in range(5):
        slot.put(Frame(i, False, 0.0))
    frame, target, _ = slot.take(timeout=1.0)
    assert frame.msg == 4 and slot.dropped == 4 and target.parsed.targets == ("x",)
    assert slot.take(timeout=0.01) is None


def test_stale_results_are_not_published():
    slot = FrameSlot()
    old = slot.set_target("cup", parse_instruction("cup"))
    published = []
    assert slot.publish_if_current(old, lambda: published.append("a"))
    slot.set_target("mug", parse_instruction("mug"))
    assert not slot.publish_if_current(old, lambda: published.append("stale"))
    assert published == ["a"]


def test_segment_requests_are_served_by_the_first_frame_after_them():
    slot = FrameSlot()
    early = SegmentRequest(parse_instruction("cup"), "cup", after=1.0)
    late = SegmentRequest(parse_instruction("mug"), "mug", after=5.0)
    slot.add_request(early)
    slot.add_request(late)
    slot.put(Frame("old", False, 0.5))  # arrived before both requests
    assert slot.take(timeout=1.0)[2] == []
    slot.put(Frame("new", False, 2.0))
    frame, _, served = slot.take(timeout=1.0)
    assert frame.msg == "new" and served == [early]
    assert slot.withdraw_request(late) and not slot.withdraw_request(early)


def test_closing_wakes_the_worker():
    slot = FrameSlot()
    result = []
    thread = threading.Thread(target=lambda: result.append(slot.take()))
    thread.start()
    slot.close()
    thread.join(2.0)
    assert result == [None]


def test_depth_matching_by_stamp():
    cache = DepthCache()
    cache.add(1.00, "a")
    cache.add(1.10, "b")
    assert cache.match(1.08, 0.05) == "b"
    assert cache.match(1.30, 0.05) is None


def test_rolling_stats():
    stats = RollingStats(window_s=2.0)
    for i, latency in enumerate([0.1, 0.2, 0.3]):
        stats.add(latency, 0.05, now=10.0 + i * 0.1)
    summary = stats.summary(now=10.5)
    assert summary["rate"] == pytest.approx(1.5) and summary["latency_p50_ms"] == pytest.approx(200)
    assert stats.summary(now=100.0)["rate"] == 0.0


def test_arrival_counter_infers_missing_frames_from_the_camera_stamps():
    counter = ArrivalCounter()
    rng = np.random.default_rng(0)
    period = 1 / 30
    # A 30 Hz camera with 1 ms of stamp jitter; frames 8, 12, 13 and 20 to 22 never arrive.
    lost = {8, 12, 13, 20, 21, 22}
    stamps = [100.0 + i * period + rng.uniform(-1e-3, 1e-3) for i in range(40) if i not in lost]
    assert sum(counter.add(s) for s in stamps) == len(lost) == counter.missing
    assert counter.received == 40 - len(lost) and counter.rate_hz() == pytest.approx(30, rel=0.05)
    counter.add(stamps[-1])  # the same frame again (a resend) is not a new interval
    counter.add(50.0)  # back in time: a restarted stream, not 'missing' frames
    counter.add(60.0)  # a pause longer than max_gap_s: likewise
    assert counter.missing == len(lost) and counter.rate_hz() == 0.0


@pytest.mark.parametrize(
    "text, problem",
    [
        ("pick up the red star", None),
        ("a\tb\nc", None),
        ("", None),
        ("x" * 501, "too long"),
        ("red\x00star", "control"),
        ("\x1b[31mred", "control"),
    ],
)
def test_instruction_problems(text, problem):
    reason = instruction_problem(text, 500)
    assert reason is None if problem is None else problem in reason


def test_round_robin_serves_every_camera_with_a_waiting_frame_in_turn():
    cameras = RoundRobin(3)
    for slot in cameras.slots:
        slot.set_target("x", parse_instruction("x"))
    served = []
    for step in range(6):
        for index in (0, 1):  # cameras 0 and 1 always have a frame waiting, camera 2 only once
            cameras.slots[index].put(Frame((index, step), False, 0.0))
        if step == 1:
            cameras.slots[2].put(Frame((2, step), False, 0.0))
        ((index, (frame, _, _)),) = cameras.take(timeout=1.0)
        assert frame.msg[0] == index
        served.append(index)
    assert served == [0, 1, 2, 0, 1, 0]
    assert cameras.take(timeout=0.01)[0][0] == 1  # camera 1's newest frame is still waiting
    assert cameras.take(timeout=0.01) is None  # timed out: nothing waits
    cameras.close()
    assert cameras.take() is None


def test_round_robin_takes_every_waiting_frame_for_a_batch_in_turn_order():
    cameras = RoundRobin(3)
    for slot in cameras.slots:
        slot.set_target("x", parse_instruction("x"))
    for index in (0, 2):
        cameras.slots[index].put(Frame((index, 0), False, 0.0))
    assert [index for index, _ in cameras.take(timeout=1.0, every_camera=True)] == [0, 2]
    for index in (0, 1, 2):
        cameras.slots[index].put(Frame((index, 1), False, 0.0))
    # The next turn starts after the first camera served last time.
    taken = cameras.take(timeout=1.0, every_camera=True)
    assert [index for index, _ in taken] == [1, 2, 0] and [f.msg for _, (f, _, _) in taken] == [(1, 1), (2, 1), (0, 1)]
    assert cameras.take(timeout=0.01, every_camera=True) is None
