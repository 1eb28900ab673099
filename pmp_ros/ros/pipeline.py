"""The node's frame handling, without ROS: newest-frame slot, instruction state, depth matching, statistics.

Kept apart from node.py so the concurrency rules are plain Python and unit-tested.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pmp_ros.language.limits import text_problem
from pmp_ros.language.parse import ParsedInstruction


def instruction_problem(text: str, max_length: int) -> str | None:
    """Why a text instruction is rejected before parsing (limits.text_problem: the rule the parser and
    structured instructions follow too), or None. Empty text is not a problem: it clears."""
    problem = text_problem(text, max_length)
    return None if problem is None else f"instruction {problem}"


# The longest a segment request may wait for a frame (seconds). A waiting request holds one of the service's
# few waiting places (the node's MAX_CONCURRENT_SEGMENTS): a longer wait would let a few callers make the
# service answer "busy" to everyone else for as long.
SEGMENT_TIMEOUT_MAX_S = 60.0


def segment_timeout(requested: float, maximum: float = SEGMENT_TIMEOUT_MAX_S) -> float:
    """A segment request's timeout (seconds) checked and bounded: finite and >= 0, else ValueError with the
    reason; above `maximum`, `maximum`. 0 stays 0 (the request asks for the node's segment_timeout)."""
    if not math.isfinite(requested) or requested < 0:
        raise ValueError(
            f"timeout must be a finite number of seconds >= 0 (0: the node's segment_timeout), got {requested}"
        )
    return min(requested, maximum)


@dataclass(frozen=True)
class Target:
    """What the node segments: generation counts instruction changes; instruction: the text as received
    ("" for a structured one); parsed None = no valid instruction, nothing is published."""

    generation: int
    instruction: str
    parsed: ParsedInstruction | None


@dataclass(frozen=True)
class Frame:
    """A received image message and when it arrived (time.monotonic())."""

    msg: Any
    compressed: bool
    received: float


@dataclass(eq=False)
class SegmentRequest:
    """A segment-service request: served with the first frame that arrives after it was made (`after`,
    time.monotonic()). The worker sets `outputs` (or `error`) and then `done`. `frame_arrived`: when the
    first such frame arrived (set by FrameSlot.put), so that a request that waited tells a missing frame from
    a busy model."""

    parsed: ParsedInstruction
    instruction: str
    after: float
    done: threading.Event = field(default_factory=threading.Event)
    frame_arrived: float | None = None
    outputs: Any = None
    error: str = ""


class FrameSlot:
    """Holds only the newest unprocessed frame; a frame replaced before processing counts as dropped.

    Also holds the target, under the same lock: `publish_if_current` runs a publication only while the
    target that a result was computed for is still current, so a callback that changes the instruction
    either happens before (the result is discarded) or after (the old result was already out).
    """

    def __init__(self, condition: threading.Condition | None = None) -> None:
        # A condition shared with other cameras' slots lets one worker wait for a frame in any (RoundRobin).
        self._cond = condition or threading.Condition()
        self._frame: Frame | None = None
        self._requests: list[SegmentRequest] = []
        self._closed = False
        self.dropped = 0
        self.target = Target(0, "", None)

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            for request in self._requests:
                if request.frame_arrived is None and request.after <= frame.received:
                    request.frame_arrived = frame.received
            self._cond.notify()

    def take(self, timeout: float | None = None) -> tuple[Frame, Target, list[SegmentRequest]] | None:
        """Wait for a frame; returns it with the current target and the segment requests made before it
        arrived (no longer pending), or None when closed or timed out."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            if self._closed or self._frame is None:
                return None
            return self._take_waiting()

    def _take_waiting(self) -> tuple[Frame, Target, list[SegmentRequest]]:
        """take's result for the waiting frame; the caller holds the lock and has checked there is one."""
        frame, self._frame = self._frame, None
        served = [r for r in self._requests if r.after <= frame.received]
        self._requests = [r for r in self._requests if r.after > frame.received]
        return frame, self.target, served

    def add_request(self, request: SegmentRequest) -> None:
        with self._cond:
            self._requests.append(request)

    def withdraw_request(self, request: SegmentRequest) -> bool:
        """Remove a request that timed out; False when the worker already took it."""
        with self._cond:
            if request in self._requests:
                self._requests.remove(request)
                return True
            return False

    def set_target(self, instruction: str, parsed: ParsedInstruction | None) -> Target:
        with self._cond:
            self.target = Target(self.target.generation + 1, instruction, parsed)
            return self.target

    def publish_if_current(self, target: Target, publish) -> bool:
        with self._cond:
            if target.generation != self.target.generation:
                return False
            publish()
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """After close (a deactivated node activated again): accept frames again, the target kept; a frame
        left from before is dropped, since it is old."""
        with self._cond:
            self._closed = False
            self._frame = None


class RoundRobin:
    """The FrameSlots of several cameras, served by one worker in turn: `take` returns the waiting frame of
    the first camera after the last one served, so a camera whose frames always wait (a fast one) is not
    served again before each other camera with a waiting frame was: none starves. With every_camera it
    returns the waiting frames of all cameras at once (for one batch)."""

    def __init__(self, count: int) -> None:
        self._cond = threading.Condition()
        self.slots = [FrameSlot(self._cond) for _ in range(count)]
        self._next = 0  # the camera served first when several have a frame waiting

    def take(
        self, timeout: float | None = None, every_camera: bool = False
    ) -> list[tuple[int, tuple[Frame, Target, list[SegmentRequest]]]] | None:
        """Wait for a frame in any slot; returns [(its camera's index, FrameSlot.take's result)] for the next
        camera in turn with a waiting frame, or with every_camera for each camera with one (in turn order);
        None when closed or timed out."""
        slots = self.slots
        with self._cond:
            self._cond.wait_for(lambda: slots[0]._closed or any(s._frame is not None for s in slots), timeout)
            if slots[0]._closed:
                return None
            taken = []
            for offset in range(len(slots)):
                index = (self._next + offset) % len(slots)
                if slots[index]._frame is not None:
                    taken.append((index, slots[index]._take_waiting()))
                    if not every_camera:
                        break
            if taken:
                self._next = (taken[0][0] + 1) % len(slots)
            return taken or None  # None: timed out

    def close(self) -> None:
        for slot in self.slots:
            slot.close()

    def reopen(self) -> None:
        for slot in self.slots:
            slot.reopen()


class DepthCache:
    """The last few depth images; `match` picks the one closest in time to a colour stamp."""

    def __init__(self, size: int = 5) -> None:
        self._items: deque[tuple[float, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, stamp_s: float, msg: Any) -> None:
        with self._lock:
            self._items.append((stamp_s, msg))

    def match(self, stamp_s: float, max_age_s: float) -> Any | None:
        nearest = self.nearest(stamp_s)
        return nearest[1] if nearest is not None and abs(nearest[0]) <= max_age_s else None

    def nearest(self, stamp_s: float) -> tuple[float, Any] | None:
        """(depth stamp - colour stamp in seconds, the depth message) of the depth image closest in time to a
        colour stamp, or None while there is none."""
        with self._lock:
            items = list(self._items)
        if not items:
            return None
        best_stamp, best = min(items, key=lambda item: abs(item[0] - stamp_s))
        return best_stamp - stamp_s, best


class RollingStats:
    """Results and latencies of the last `window_s` seconds (thread-safe)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, float, float]] = deque()  # (time, latency s, inference s)
        self._lock = threading.Lock()

    def add(self, latency_s: float, inference_s: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._events.append((now, latency_s, inference_s))
            self._trim(now)

    def summary(self, now: float | None = None) -> dict[str, float]:
        """rate (results/s), latency_p50_ms (arrival to publication), inference_p50_ms."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            events = list(self._events)
        if not events:
            return {"rate": 0.0, "latency_p50_ms": 0.0, "inference_p50_ms": 0.0}
        latencies = np.array([e[1] for e in events])
        inference = np.array([e[2] for e in events])
        return {
            "rate": len(events) / self.window_s,
            "latency_p50_ms": float(np.median(latencies) * 1e3),
            "inference_p50_ms": float(np.median(inference) * 1e3),
        }

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window_s:
            self._events.popleft()


class ArrivalCounter:
    """Images received, and images the camera's header stamps imply were sent but never arrived.

    The camera's period is the lower quartile of the last `window` intervals between consecutive stamps:
    robust to jitter and to losses as long as a quarter of the intervals join consecutive frames. An
    interval of n periods (rounded) is a gap of n - 1 frames; it counts as missing only once the stamps come
    back to the period (the camera kept its rate: the frames between were lost on the way). A camera that
    lowers its rate gives gap after gap: after `rate_change` gaps in a row none of them counts, and the
    period is estimated afresh (a lowered rate is not a loss). A repeated stamp is the same frame again; a
    stamp that goes back or jumps more than `max_gap_s` is a restarted stream (camera restart, bag loop) and
    starts the estimate afresh.
    """

    def __init__(self, window: int = 32, min_intervals: int = 4, max_gap_s: float = 1.0, rate_change: int = 4) -> None:
        self.min_intervals = min_intervals
        self.max_gap_s = max_gap_s
        self.rate_change = rate_change
        self._intervals: deque[float] = deque(maxlen=window)
        self._pending: list[int] = []  # frames missing in the gaps since the last interval at the period
        self._last_stamp: float | None = None
        self._lock = threading.Lock()
        self.received = 0
        self.missing = 0

    def add(self, stamp_s: float) -> int:
        """Count an image with this header stamp (seconds); returns how many frames were confirmed missing by
        it (those of the gaps before it, now that it came at the camera's period)."""
        with self._lock:
            self.received += 1
            last, self._last_stamp = self._last_stamp, stamp_s
            if last is None or stamp_s == last:
                return 0
            interval = stamp_s - last
            if interval < 0 or interval > self.max_gap_s:
                self._intervals.clear()
                self._pending.clear()
                return 0
            period = self._period()
            gap = max(round(interval / period) - 1, 0) if period else 0
            if gap:
                self._pending.append(gap)
                if len(self._pending) >= self.rate_change:  # the camera's rate changed: estimate it afresh
                    self._pending.clear()
                    self._intervals.clear()
                self._intervals.append(interval)
                return 0
            self._intervals.append(interval)
            confirmed, self._pending = sum(self._pending), []
            self.missing += confirmed
            return confirmed

    def rate_hz(self) -> float:
        """The camera's frame rate inferred from the stamps; 0 while unknown."""
        with self._lock:
            period = self._period()
        return 1.0 / period if period else 0.0

    def _period(self) -> float | None:
        if len(self._intervals) < self.min_intervals:
            return None
        return float(np.percentile(self._intervals, 25)) or None
