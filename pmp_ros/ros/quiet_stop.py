"""The node's process stops quietly on SIGINT or SIGTERM at any moment: exit code 0, no traceback, no ERROR
line, within STOP_LIMIT_S (docs/node.md: Stopping).

Three phases, one handler:
- before rclpy is initialized (the node's imports take seconds): the first signal ends the process at once
  with exit code 0 (os._exit: there is nothing to clean up yet, and an exception raised inside a C
  extension's import turns into an ImportError traceback). Python's defaults would give a KeyboardInterrupt
  traceback (SIGINT) or an exit by the signal (SIGTERM). `python -m pmp_ros.ros.node` installs the handler
  as the node module's first import (the __main__ check below); the pmp_node console script through
  `console_main`.
- from rclpy.init on (`hand_over`): rclpy's own handlers shut the context down, which ends the spin and makes
  a configure in progress stop waiting for the model, and then call this handler, which only notes the signal
  (a SystemExit raised at an arbitrary point of the node's start or cleanup would skip the cleanup).
- at the end (`finish`), after the node's own cleanup (context shut down and destroyed: the DDS participant
  has left), work still running on the model's thread (a forward or a model load: neither can be
  interrupted; 44-99 s with a large model) is waited for at most WORK_GRACE_S, and the process ends with
  os._exit: the interpreter's exit would join that thread, and its finalization alone (torch's modules) took
  4-5 s on a loaded machine, most of the stop's time limit.

Stdlib only: it must be importable before anything heavy.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn

NODE_MODULE = "pmp_ros.ros.node"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_LIMIT_S = 5.0  # a stop ends the process within this (issue #26); the parts below add up to less
WORK_GRACE_S = 2.0  # the longest the end waits for the model's thread
STREAM_STOP_S = 1.0  # the longest a stop waits for the worker to finish its frame


class _StopSignals:
    """The first stop signal, and whether it raises (before rclpy is initialized) or is only noted."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.raising = True
        self.installed = False
        self.on_noted: Callable[[], None] | None = None

    def on_signal(self, signum: int, _frame) -> None:
        if self.received is not None:
            return  # an impatient second Ctrl-C must not cut the first one's cleanup short
        self.received = signum
        if self.raising:
            # Nothing to clean up before rclpy starts. Not SystemExit: raised inside a C extension's import
            # (numpy's), it came out as an ImportError traceback (test_node_stops, 1 of 2 runs).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if self.on_noted is not None:
            self.on_noted()


_STOP = _StopSignals()


def install() -> None:
    """Handle SIGINT and SIGTERM from now on (main thread only); the first one before `hand_over` exits 0 at once."""
    if not _STOP.installed:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _STOP.on_signal)
        _STOP.installed = True


def hand_over() -> None:
    """Call right before rclpy.init: rclpy's handlers, installed then, stop the node and call ours after (they
    keep the handler in place at their installation), which from now on only notes the signal."""
    install()
    _STOP.raising = False


def on_noted(callback: Callable[[], None]) -> None:
    """From now on a noted signal also calls `callback` (main thread, between bytecodes). The node sets
    shut_down_rclpy as soon as it exists."""
    _STOP.on_noted = callback


def shut_down_rclpy(logger_name: str) -> None:
    """What a noted stop does to the node (rclpy imported here, not at this module's import):
    - its logger drops everything below FATAL: the lifecycle transition a stop cuts short (configure while the
      model loads) fails to publish its event on the shut-down context and logs an ERROR that is the stop's,
      not news (test_node_stops: a SIGTERM while it configures);
    - the context is shut down, even where rclpy's handler left it up: in 1 of 40 stops (bench/start_stop.py,
      a SIGINT 0.05 s after the node appeared on the graph) the node ran on. The node makes its executors
      before this can happen: one made on a shut-down context fails in its constructor, noisily.
    """
    import rclpy
    from rclpy.logging import LoggingSeverity, set_logger_level

    set_logger_level(logger_name, LoggingSeverity.FATAL)
    if rclpy.ok():
        rclpy.try_shutdown()


def received() -> bool:
    """Whether a stop signal came."""
    return _STOP.received is not None


def finish(code: int, busy: Callable[[], bool] | None = None, grace_s: float = WORK_GRACE_S) -> NoReturn:
    """End the process with `code` once busy() is false or grace_s have passed (Python's logging, stdout and
    stderr flushed first), without the interpreter's finalization."""
    deadline = time.monotonic() + grace_s
    while busy is not None and busy() and time.monotonic() < deadline:
        time.sleep(0.02)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def console_main() -> int:
    """The pmp_node console script: the handler first, then the node's imports and main."""
    install()
    from pmp_ros.ros.node import main

    return main()


def _started_as_node() -> bool:
    """Whether this process runs the node module as __main__ (python -m pmp_ros.ros.node), which imports this
    module first."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == NODE_MODULE


if _started_as_node():
    install()
