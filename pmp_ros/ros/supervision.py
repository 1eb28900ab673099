"""No thread of the node dies silently: a Supervisor runs a thread's loop again after an exception, logging
each distinct failure once with its cause and counting every one; failures that come too often make the
supervisor `faulted` (the node then reports ERROR, and a managed node takes the lifecycle error transition).

ROS-free but for the logger it is given (anything with .error(text)), so the rules are plain Python and
unit-tested (test/ros/test_supervision.py). The node supervises its worker (the model's thread), the segment
service's executor thread and its own executor's spin.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable

# Failures of one thread within FAULT_WINDOW_S that make it faulted: a loop that fails again at once on every
# restart would otherwise spin, logging nothing new and doing nothing.
MAX_FAILURES = 3
FAULT_WINDOW_S = 60.0


def cause(error: BaseException) -> str:
    """'RuntimeError: text (at module.py:123 in function)': the error and the innermost frame it came from."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


class Supervisor:
    """One thread's failures. `run(loop)` calls loop() until it returns, again after each exception while the
    supervisor is not faulted; `record(error)` counts one failure (for callers that catch it themselves).

    name: the thread's name for the log lines; on_fault(reason) is called once, from the failing thread,
    when it becomes faulted (MAX_FAILURES within FAULT_WINDOW_S); stopping() true: the process is stopping,
    and an exception then (a publisher whose context is gone) is its end, not a failure."""

    def __init__(
        self,
        name: str,
        logger,
        on_fault: Callable[[str], None] | None = None,
        max_failures: int = MAX_FAILURES,
        window_s: float = FAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._logger = logger
        self._on_fault = on_fault
        self._max_failures = max_failures
        self._window_s = window_s
        self._clock = clock
        self._stopping = stopping
        self._recent: deque[float] = deque()
        self._logged: set[str] = set()
        self._lock = threading.Lock()
        self.failures = 0
        self.fault = ""  # why it is faulted; "" while it is not

    def record(self, error: BaseException) -> bool:
        """Count a failure, log its cause unless the same cause was logged before; returns whether the thread
        must not run again: it is faulted now, or the process is stopping (then nothing is counted)."""
        if self._stopping is not None and self._stopping():
            return True
        text = cause(error)
        with self._lock:
            self.failures += 1
            now = self._clock()
            self._recent.append(now)
            while self._recent and self._recent[0] < now - self._window_s:
                self._recent.popleft()
            first_time = text not in self._logged
            self._logged.add(text)
            newly_faulted = not self.fault and len(self._recent) >= self._max_failures
            if newly_faulted:
                self.fault = f"{self.name} failed {len(self._recent)} times in {self._window_s:.0f} s, last with {text}"
        if first_time:
            self._logger.error(f"{self.name} failed: {text}; {'stopped' if self.fault else 'restarted'}")
        if newly_faulted:
            self._logger.error(f"{self.fault}; stopped")
            if self._on_fault is not None:
                self._on_fault(self.fault)
        return bool(self.fault)

    def run(self, loop: Callable[[], None]) -> None:
        """loop() until it returns; after an exception it runs again, unless the supervisor is faulted."""
        while not self.fault:
            try:
                loop()
                return
            except Exception as error:
                if self.record(error):
                    return

    def reset(self) -> None:
        """Forget the failures' timing and the fault (a managed node configured again); the count stays."""
        with self._lock:
            self._recent.clear()
            self.fault = ""
