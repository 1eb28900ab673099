"""Fuzzing one running node over DDS (issue #26): hypothesis-drawn Image or CompressedImage, String and
Instruction messages and segment service requests, in batches, to a node that must answer a valid frame
after every batch, on its stream and through its service, and whose counters must add up.

Each batch (one hypothesis example):
1. the drawn messages and requests, interleaved as drawn (instructions racing images and requests); the
   diagnostics then echo what they left in force shortened;
2. the instructions settled: a valid structured instruction, then a valid text one, each waited for in the
   node's diagnostics (on its topic it supersedes every drawn one: a topic is delivered in order);
3. a second drawn list of images, now under a valid instruction, between two quiet moments: each image the node
   counts as received is then exactly one of dropped (replaced before processing), bad (refused), published
   (this test's reliable subscription counts them by their stamps), stale or failed;
4. a valid frame is answered on the stream, and a valid request through the service;
5. every drawn request has been answered, its error (if any) short; every diagnostics value is short.

Modes: by default each image transport (raw, compressed: the node subscribes to one) gets the issue's cases
(issue_cases: a 100,000-character instruction, a 1,000,000-character structured phrase, requests with
timeout 1e10 and inf) and a few drawn batches, about a minute in all. The long mode runs until
PMP_FUZZ_MINUTES (default 30) have passed:

    .venv/bin/python -m pytest test/ros/test_fuzz.py -m fuzz --hypothesis-seed 1 -p no:cacheprovider

It prints how many messages it sent. The node is started once per transport (module-scoped fixture) on the
session's small model (test/conftest.py).
"""

from __future__ import annotations

import math
import os
import random
import time

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from pmp_ros.language.parse import parse_instruction
from pmp_ros.ros import interface, messages, qos
from pmp_ros.ros.image_conversion import array_to_image
from pmp_ros_msgs.msg import Instruction, SegmentationResult
from pmp_ros_msgs.srv import Segment

from compressed_samples import jpeg_declaring, uniform_png
from ros_harness import RosTestClient, node_argv, running_node, wait_until

GOOD = "pick up the red star"
SETTLING = Instruction(targets=["green ring"], every=[True])
SHORT_EXAMPLES = 3  # per transport: about a minute in all on a free 2-core machine
LONG_MINUTES = float(os.environ.get("PMP_FUZZ_MINUTES", "30"))
ANSWER_TIMEOUT_S = 120.0  # a drawn request waits at most the node's maximum timeout, then is answered
ECHO_LIMIT = 1000  # characters: no diagnostics value or service error may be longer (texts are shortened)
FRAME = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)

# -- strategies -----------------------------------------------------------------------------------------
ENCODINGS = st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1"]) | st.sampled_from(
    ["", "yuv422", "bayer_rggb8", "rgb16", "x" * 300, "rgb8\x00", "8UC3"]
)


@st.composite
def raw_images(draw):
    """A well-formed image of a random encoding and size, or one with any fields (sizes past the limit,
    wrong steps, short data)."""
    if draw(st.booleans()):
        encoding = draw(st.sampled_from(["rgb8", "bgr8", "mono8", "rgba8"]))
        height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
        channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4}[encoding]
        pixels = np.frombuffer(
            draw(st.binary(min_size=height * width * channels, max_size=height * width * channels)), np.uint8
        )
        return array_to_image(pixels.reshape((height, width, channels) if channels > 1 else (height, width)), encoding)
    height, width = draw(
        st.sampled_from([(0, 0), (100_000, 100_000), (2**31, 1), (1, 2**32 - 1)])
        | st.tuples(st.integers(0, 64), st.integers(0, 64))
    )
    return Image(
        height=height,
        width=width,
        encoding=draw(ENCODINGS),
        step=draw(st.integers(0, 2**32 - 1) | st.integers(0, 300)),
        data=draw(st.binary(max_size=6000)),
        is_bigendian=draw(st.integers(0, 255)),
    )


def _encoded(extension: str, height: int, width: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(extension, pixels)[1].tobytes()


@st.composite
def compressed_images(draw):
    """A valid PNG or JPEG, one cut short or with flipped bytes, one declaring a huge size, or any bytes."""
    kind = draw(st.sampled_from(["valid", "cut", "flipped", "bomb", "bytes"]))
    extension = draw(st.sampled_from([".png", ".jpg"]))
    data = _encoded(extension, draw(st.integers(1, 48)), draw(st.integers(1, 48)), draw(st.integers(0, 1000)))
    if kind == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flipped":
        flipped = bytearray(data)
        for index in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            flipped[index] ^= 0xFF
        data = bytes(flipped)
    elif kind == "bomb":
        data = BOMBS[extension]
    elif kind == "bytes":
        data = draw(st.binary(max_size=3000))
    format_name = draw(st.sampled_from(["png", "jpeg", "", "rgb8; jpeg compressed bgr8"]) | st.text(max_size=40))
    return CompressedImage(format=format_name, data=data)


BOMBS: dict[str, bytes] = {}  # filled once per session: building the PNG takes a second

TEXTS = st.text(max_size=200) | st.sampled_from(
    [
        "",
        "   \t\n",
        "x" * 100_000,
        "pick up the red star " * 5000,
        "red\x00star",
        "\x1b[2J the cup",
        "\u202e the cup",
        "the " + " ".join(["big"] * 40) + " cup",
        ", ".join(f"the thing{i}" for i in range(40)),
        GOOD,
        "the green ring, not the red star",
        "the second cup from the left",
    ]
)
PHRASES = st.text(max_size=30) | st.sampled_from(["red star", "x" * 100_000, "a b c d e f g h", "cup\x00", ""])
WORDS = st.sampled_from(["", "left", "nearest", "near", "left_of", "behind", "sideways"]) | st.text(max_size=20)


@st.composite
def structured_instructions(draw):
    targets = draw(st.lists(PHRASES, max_size=20))
    return Instruction(
        targets=targets,
        every=draw(st.lists(st.booleans(), max_size=21) | st.just([True] * len(targets))),
        alternatives=draw(st.booleans()),
        everything=draw(st.booleans()),
        excluded=draw(st.lists(PHRASES, max_size=5)),
        order=draw(WORDS),
        ordinal=draw(st.integers(0, 2**32 - 1)),
        relation=draw(WORDS),
        reference=draw(PHRASES),
    )


TIMEOUTS = st.floats(width=32, allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, 0.5, -1.0, 3600.0, 1e10, math.inf, -math.inf, math.nan]
)
REQUESTS = st.builds(Segment.Request, instruction=TEXTS, timeout=TIMEOUTS)


def batches(images):
    actions = st.one_of(
        images.map(lambda m: ("image", m)),
        TEXTS.map(lambda t: ("instruction", String(data=t))),
        structured_instructions().map(lambda m: ("structured", m)),
        REQUESTS.map(lambda r: ("request", r)),
    )
    return st.tuples(st.lists(actions, min_size=1, max_size=8), st.lists(images, min_size=1, max_size=6))


# -- the node and its client ----------------------------------------------------------------------------
class FuzzSession:
    """The running node, this test's publishers, subscriptions and service client, and what was sent."""

    def __init__(self, proc, transport: str):
        self.proc, self.transport = proc, transport
        self.client = RosTestClient(f"pmp_fuzz_{transport}")
        node = self.client.node
        image_type, image_topic = (
            (CompressedImage, interface.IMAGE_TOPIC + "/compressed")
            if transport == "compressed"
            else (Image, interface.IMAGE_TOPIC)
        )
        self.image_pub = self.client.publisher(image_type, image_topic, qos.profile(100))
        self.instruction_pub = self.client.publisher(String, interface.INSTRUCTION_TOPIC, qos.INSTRUCTION)
        self.structured_pub = self.client.publisher(
            Instruction, interface.STRUCTURED_INSTRUCTION_TOPIC, qos.INSTRUCTION
        )
        self.results = self.client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC, qos.profile(1000))
        self.diagnostics = self.client.subscribe(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, qos.profile(100))
        self.service = node.create_client(Segment, interface.SEGMENT_SERVICE)
        wait_until(self.service.service_is_ready, 60, what="the segment service")
        self.sent = 0  # messages and requests
        self._stamp = 0

    def stamp(self, msg):
        """A stamp of its own for each image (the stream's results are matched to images by it)."""
        self._stamp += 1
        msg.header.stamp = Time(sec=2000 + self._stamp // 1000, nanosec=(self._stamp % 1000) * 1000)
        msg.header.frame_id = "camera_optical"
        return (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def send(self, kind: str, msg):
        self.sent += 1
        if kind == "image":
            key = self.stamp(msg)
            self.image_pub.publish(msg)
            return key
        if kind == "instruction":
            self.instruction_pub.publish(msg)
        elif kind == "structured":
            self.structured_pub.publish(msg)
        elif kind == "request":
            return self.service.call_async(msg)
        return None

    def alive(self):
        assert self.proc.returncode is None, self.proc.output()[-5000:]

    def fresh_values(self, timeout: float = 30.0) -> dict[str, str]:
        """The values of the node's diagnostics status published after this call."""
        start = len(self.diagnostics)
        name = interface.diagnostics_status_name()

        def fresh():
            statuses = [s for a in self.diagnostics[start:] for s in a.status if s.name == name]
            return statuses and {kv.key: kv.value for kv in statuses[-1].values}

        return wait_until(fresh, timeout, what="fresh diagnostics")

    def settle_instructions(self):
        """A valid structured instruction, then GOOD, each waited for: no drawn instruction can follow."""
        understood = parse_instruction(GOOD).describe()
        settling = messages.parsed_from_instruction(SETTLING).describe()
        self.send("structured", SETTLING)
        wait_until(lambda: self.fresh_values()["understood"] == settling, 60, what="the settling instruction")
        self.send("instruction", String(data=GOOD))
        wait_until(
            lambda: (lambda v: v["instruction"] == GOOD and v["understood"] == understood)(self.fresh_values()),
            60,
            what="the good instruction",
        )

    def quiet_counters(self) -> dict[str, int]:
        """The frame counters once two diagnostics in a row show the same images received and the node's
        worker has nothing waiting (its dropped, bad, stale and error counts still too)."""
        names = ("images_received", "dropped_frames", "bad_images", "stale_results", "errors")
        previous = None

        def steady():
            nonlocal previous
            values = self.fresh_values()
            counters = {name: int(values[name]) for name in names}
            same, previous = counters == previous, counters
            return same and counters

        return wait_until(steady, 120, interval=0.5, what="the node's counters to settle")

    def answers_a_valid_frame(self):
        """A frame's result on the stream under GOOD (frames sent until one is answered)."""
        first = len(self.results)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.alive()
            key = self.send("image", self.valid_frame())
            stop = time.monotonic() + 1.0
            while time.monotonic() < stop:
                if any((m.header.stamp.sec, m.header.stamp.nanosec) == key for m in self.results[first:]):
                    return
                time.sleep(0.02)
        raise AssertionError(f"no result on the stream after a batch:\n{self.proc.output()[-5000:]}")

    def service_answers(self):
        future = self.send("request", Segment.Request(instruction="the blue cross", timeout=0.0))
        deadline = time.monotonic() + 120
        while not future.done() and time.monotonic() < deadline:
            self.alive()
            self.send("image", self.valid_frame())
            time.sleep(0.2)
        assert future.done(), f"the service did not answer:\n{self.proc.output()[-5000:]}"
        response = future.result()
        assert response.success, response.error

    def valid_frame(self):
        if self.transport == "compressed":
            return CompressedImage(format="png", data=cv2.imencode(".png", FRAME[..., ::-1])[1].tobytes())
        return array_to_image(FRAME, "rgb8")


@pytest.fixture(scope="module", params=["raw", "compressed"])
def fuzz(request, model_file):
    BOMBS.setdefault(".png", uniform_png(12000, 12000))
    BOMBS.setdefault(".jpg", jpeg_declaring(12000, 12000))
    argv = node_argv(
        {
            "model_path": model_file,
            "device": "cpu",
            "cpu_threads": 1,
            "image_transport": request.param,
            "image_reliability": "reliable",
            "tracking": "false",
            "score_threshold": 0.0,
            "inference_width": 96,
            "inference_height": 64,
        }
    )
    with running_node(argv, f"fuzz_{request.param}") as proc:
        session = FuzzSession(proc, request.param)
        try:
            yield session
        finally:
            session.client.close()
            say(request.config, f"test_fuzz ({request.param}): {session.sent} messages and requests sent")


def say(config, text: str) -> None:
    """A line on pytest's terminal, past its output capture."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        config.pluginmanager.getplugin("terminalreporter").write_line(text)


def assert_short_diagnostics(session: FuzzSession) -> None:
    long_values = {k: len(v) for k, v in session.fresh_values().items() if len(v) > ECHO_LIMIT}
    assert not long_values, long_values


def run_batch(session: FuzzSession, drawn, later_images):
    # 1. Drawn messages and requests, interleaved.
    requests = [session.send(kind, msg) for kind, msg in drawn]
    requests = [future for (kind, _), future in zip(drawn, requests) if kind == "request"]
    session.alive()
    assert_short_diagnostics(session)  # what the drawn instructions left in force is echoed shortened
    # 2. Instructions settled.
    session.settle_instructions()
    # 3. The drawn images under a valid instruction, between two quiet moments: the counters add up.
    before = session.quiet_counters()
    first_result = len(session.results)
    keys = {session.send("image", msg) for msg in later_images}
    after = session.quiet_counters()
    published = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in session.results[first_result:]} & keys
    delta = {name: after[name] - before[name] for name in after}
    accounted = (
        delta["dropped_frames"] + delta["bad_images"] + len(published) + delta["stale_results"] + delta["errors"]
    )
    assert delta["images_received"] <= len(keys), delta
    assert delta["images_received"] == accounted, (delta, len(published), len(keys))
    # 4. Stream and service answer.
    session.answers_a_valid_frame()
    session.service_answers()
    # 5. Every drawn request answered, briefly; every diagnostics value short.
    wait_until(
        lambda: all(f.done() for f in requests), ANSWER_TIMEOUT_S, interval=0.2, what="answers to the drawn requests"
    )
    for future in requests:
        response = future.result()
        assert response.success or response.error, "a refused request must say why"
        assert len(response.error) <= ECHO_LIMIT, response.error[:300]
    assert_short_diagnostics(session)
    session.alive()


def _images(transport: str):
    return compressed_images() if transport == "compressed" else raw_images()


def issue_cases(session: FuzzSession) -> tuple[list, list]:
    """Issue #26's inputs as one batch: a huge rejected instruction (echoed whole in the diagnostics), a huge
    structured phrase (skipped every limit), a request whose timeout overflowed the service thread's wait."""
    drawn = [
        ("instruction", String(data="x" * 100_000)),
        ("structured", Instruction(targets=["y" * 1_000_000])),
        ("request", Segment.Request(instruction=GOOD, timeout=1e10)),
        ("request", Segment.Request(instruction=GOOD, timeout=math.inf)),
    ]
    return drawn, [session.valid_frame()]


def _fuzz(session: FuzzSession, examples: int, fixed_seed: int | None = None, issue: bool = False) -> None:
    """`examples` batches drawn by hypothesis (from fixed_seed when given, else hypothesis's own seed, which
    --hypothesis-seed sets), after the issue's cases when `issue`."""

    @settings(
        max_examples=examples,
        deadline=None,
        # The node's state carries over from batch to batch: shrinking would replay on a changed node.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(batch=batches(_images(session.transport)))
    def check(batch):
        run_batch(session, *batch)

    if issue:
        check = example(batch=issue_cases(session))(check)
    (check if fixed_seed is None else seed(fixed_seed)(check))()


def test_fuzzed_batches_leave_the_node_answering_with_counters_that_add_up(fuzz):
    _fuzz(fuzz, SHORT_EXAMPLES, issue=True)


@pytest.mark.fuzz
@pytest.mark.timeout(LONG_MINUTES * 60 + 1200)  # pytest.ini's 600 s is per test; this one runs for minutes
def test_fuzz_long(fuzz, request):
    markexpr = request.config.getoption("markexpr") or ""
    if "fuzz" not in markexpr or "not fuzz" in markexpr:
        pytest.skip("the long fuzz run: select it with -m fuzz")
    deadline = time.monotonic() + LONG_MINUTES * 60 / 2  # the two transports share the time
    base = int(request.config.getoption("hypothesis_seed", None) or random.SystemRandom().randrange(2**32))
    rounds = 0
    while time.monotonic() < deadline:  # rounds of 5 batches, each from its own seed: base + round
        _fuzz(fuzz, 5, base + rounds)
        rounds += 1
    say(request.config, f"test_fuzz_long ({fuzz.transport}): {rounds} rounds of 5 batches from seed {base}")
