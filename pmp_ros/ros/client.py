"""rclpy plumbing shared by the demo, the bag player, the benchmarks, the example and the tests.

- BackgroundNode: an rclpy node in a context of its own, spun by an executor thread, for programs that do
  other work in their main thread (publishing a bag, measuring, asserting).
- spin_until_shutdown: the main loop of a one-node program; Ctrl-C and an external shutdown end it quietly.
- wait_until: poll a condition with a deadline, raising TimeoutError that names what was awaited.
- serialize / deserialize: rclpy's CDR (de)serialisation, for bags and raw subscriptions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.serialization import deserialize_message, serialize_message


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str = "condition", interval: float = 0.01
) -> object:
    """Poll `predicate` until it returns something truthy, and return that; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)
    return value


class BackgroundNode:
    """An rclpy node of its own context, spun in a background thread; a context manager (close() on exit).

    threads: executor threads (1: callbacks run one at a time). domain_id: None = ROS_DOMAIN_ID.
    """

    def __init__(self, name: str, namespace: str = "", domain_id: int | None = None, threads: int = 1):
        self.context = Context()
        rclpy.init(context=self.context, **({} if domain_id is None else {"domain_id": domain_id}))
        self.node = rclpy.create_node(name, namespace=namespace or None, context=self.context)
        self.executor = (
            SingleThreadedExecutor(context=self.context)
            if threads == 1
            else MultiThreadedExecutor(num_threads=threads, context=self.context)
        )
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        spin_until_context_down(self.executor, self.context)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> BackgroundNode:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def spin_until_context_down(executor, context) -> None:
    """Spin `executor` until `context` shuts down (SIGINT/SIGTERM, or close()): the shutdown can land between
    the executor's check of the context and its building a wait set, which then raises RCLError instead of
    ExternalShutdownException; both end the spin quietly once the context is down."""
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception:
        if context.ok():
            raise


def spin_until_shutdown(node, executor=None) -> None:
    """Spin `node` (with `executor`, or rclpy's default) until Ctrl-C or shutdown, then destroy it and shut
    rclpy down; neither ending prints a traceback."""
    try:
        if executor is None:
            rclpy.spin(node)
        else:
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def serialize(msg) -> bytes:
    """A ROS message -> its CDR bytes (what DDS carries and bags store)."""
    return serialize_message(msg)


def deserialize(data: bytes | memoryview, msg_type):
    """CDR bytes -> a message of `msg_type` (a message class)."""
    return deserialize_message(bytes(data) if isinstance(data, memoryview) else data, msg_type)
