"""SIGINT and SIGTERM for the tools that start a node (pmp-eval-bag, pmp-demo): stop it, then exit.

Python's defaults fail both ways: SIGTERM ends the process at once, without running a `finally` or an
`__exit__`, so the node (in a session of its own, so that a terminal's Ctrl-C reaches the tool first)
keeps running, orphaned; SIGINT raises KeyboardInterrupt, which ends in a traceback. Here both raise
`Interrupted` in the main thread, which unwinds through the context managers that stop the node, and the
tool's main prints one line. Only the first signal raises: a second one (an impatient Ctrl-C) must not cut
short the node's shutdown that the first started.

    try:
        with stop_signals():      # the previous handlers are back afterwards (tools also run in-process)
            ...
    except Interrupted as stop:
        print(f"tool: {stop}", file=sys.stderr)
        return stop.exit_code

Pool workers call handle_stop_signals() once and run each task in a raising() block: a signal that comes
between tasks is kept, and the next raising() block raises at once, so a worker told to stop starts no
further work.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None  # the first stop signal, once one came
_raise_now = False  # inside a raising() block


class Interrupted(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt: `except Exception` lets it pass)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, the shell's convention for a process ended by a signal."""
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {self.name}"


def _on_signal(signum: int, _frame) -> None:
    global _received
    if _received is not None:
        return
    _received = signum
    if _raise_now:
        raise Interrupted(signum)


def handle_stop_signals() -> None:
    """Install the handlers for SIGINT and SIGTERM for good, forgetting any earlier signal (main thread
    only, as Python requires)."""
    global _received
    _received = None
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM raises Interrupted; the previous handlers are restored
    after it."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    handle_stop_signals()
    try:
        with raising():
            yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def raising() -> Iterator[None]:
    """Within the block, a stop signal raises Interrupted; one that came before raises on entry."""
    global _raise_now
    _raise_now = True  # before the check: a signal between the two still raises
    try:
        if _received is not None:
            raise Interrupted(_received)
        yield
    finally:
        _raise_now = False
