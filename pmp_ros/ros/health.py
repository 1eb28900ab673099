"""Whether a camera's frames, and its depth, were usable lately: what the node's diagnostics say beside the
counters, so that a camera whose every frame is rejected, or depth that never matches, is not reported OK.

ROS-free: the node's worker records each frame it took (used, or rejected and why; with use_depth, whether
depth was usable with it and why not) and the diagnostics timer asks for the problems once a second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from pmp_ros.language.limits import ECHO_LENGTH

# Seconds of frames looked back at: a camera whose every frame in it was rejected, or had no usable depth, is
# reported (and no longer once one is good).
HEALTH_WINDOW_S = 5.0
REASON_LENGTH = 2 * ECHO_LENGTH  # characters of a rejection's reason quoted in the diagnostics


@dataclass(frozen=True)
class Outcome:
    """One frame the worker took: when (time.monotonic()), whether it was used, why not (a fault of the node's
    own, `failed`, or of the input)."""

    at: float
    used: bool
    reason: str = ""
    failed: bool = False


class _Window:
    """The outcomes of the last `window_s` seconds (thread-safe)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: deque[Outcome] = deque()
        self._lock = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self._items.append(outcome)
            self._trim(outcome.at)

    def recent(self, now: float) -> list[Outcome]:
        with self._lock:
            self._trim(now)
            return list(self._items)

    def _trim(self, now: float) -> None:
        while self._items and self._items[0].at < now - self.window_s:
            self._items.popleft()


class FrameHealth:
    """A camera's frames of the last window: a problem when every one was rejected."""

    def __init__(self, window_s: float = HEALTH_WINDOW_S) -> None:
        self._window = _Window(window_s)

    def used(self, now: float | None = None) -> None:
        self._window.add(Outcome(time.monotonic() if now is None else now, True))

    def rejected(self, reason: str, failed: bool = False, now: float | None = None) -> None:
        """A frame not used: its input was bad (reason), or the node failed on it (failed)."""
        self._window.add(Outcome(time.monotonic() if now is None else now, False, _clip(reason), failed))

    def problem(self, now: float | None = None) -> tuple[str, bool] | None:
        """(a sentence, whether it is the node's own failure) when every frame of the window was rejected, or
        None (no frame, or one used)."""
        outcomes = self._window.recent(time.monotonic() if now is None else now)
        if not outcomes or any(o.used for o in outcomes):
            return None
        last = outcomes[-1]
        what = "failed" if last.failed else "was rejected"
        return (
            f"every frame of the last {self._window.window_s:.0f} s {what} ({len(outcomes)}), the last: {last.reason}",
            last.failed,
        )


class DepthHealth:
    """With use_depth, whether the frames of the last window had usable depth; a problem when none had, with
    the reason of the latest: no calibrated camera info, depth images that came but never within depth_max_age
    of the colour stamps (by how much), a bad depth image."""

    def __init__(self, window_s: float = HEALTH_WINDOW_S) -> None:
        self._window = _Window(window_s)

    def used(self, now: float | None = None) -> None:
        self._window.add(Outcome(time.monotonic() if now is None else now, True))

    def unusable(self, reason: str, now: float | None = None) -> None:
        """A frame without usable depth; reason (received text in it is cut to REASON_LENGTH)."""
        self._window.add(Outcome(time.monotonic() if now is None else now, False, _clip(reason)))

    def out_of_tolerance(self, offset_s: float, max_age_s: float, now: float | None = None) -> None:
        """The depth image nearest in time to a frame was offset_s (depth stamp - colour stamp) from it, beyond
        max_age_s."""
        side = "behind" if offset_s < 0 else "ahead of"
        reason = (
            f"depth stamps never within depth_max_age {max_age_s:.3f} s of the images' (the nearest "
            f"{abs(offset_s):.3f} s {side} them): one clock for both, or a larger depth_max_age?"
        )
        self._window.add(Outcome(time.monotonic() if now is None else now, False, reason))

    def problem(self, now: float | None = None) -> str | None:
        outcomes = self._window.recent(time.monotonic() if now is None else now)
        if not outcomes or any(o.used for o in outcomes):
            return None
        return f"use_depth is true but no frame of the last {self._window.window_s:.0f} s had usable depth: " + (
            outcomes[-1].reason
        )


def _clip(text: str) -> str:
    return text if len(text) <= REASON_LENGTH else text[:REASON_LENGTH] + "..."
