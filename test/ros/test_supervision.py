"""Supervisor (pmp_ros/ros/supervision.py): a thread's loop runs again after an exception, each distinct cause
is logged once, every failure counted, and failures that come too often make it faulted (issue #26 item 2)."""

from pmp_ros.ros.supervision import Supervisor, cause


class Log:
    def __init__(self):
        self.lines = []

    def error(self, text):
        self.lines.append(text)


def _failing(times, then=None):
    """A loop that raises RuntimeError `times` times, then runs `then` and returns."""
    calls = []

    def loop():
        calls.append(1)
        if len(calls) <= times:
            raise RuntimeError(f"boom {len(calls) > 1}")  # two distinct messages: the first, then the rest
        if then:
            then()

    return loop, calls


def test_a_failing_loop_is_run_again_and_each_cause_logged_once():
    log = Log()
    supervisor = Supervisor("the worker", log, max_failures=10)
    loop, calls = _failing(4)
    supervisor.run(loop)
    assert len(calls) == 5 and supervisor.failures == 4 and not supervisor.fault
    assert len(log.lines) == 2, log.lines  # 'boom False' once, 'boom True' once
    assert all("the worker failed: RuntimeError: boom" in line and "restarted" in line for line in log.lines)
    assert "test_supervision.py" in log.lines[0]  # where it came from


def test_failures_that_come_too_often_fault_the_thread_once():
    log, faults = Log(), []
    now = [0.0]
    supervisor = Supervisor("the worker", log, faults.append, max_failures=3, window_s=60.0, clock=lambda: now[0])
    loop, calls = _failing(100)
    supervisor.run(loop)
    assert len(calls) == 3 and supervisor.failures == 3
    assert len(faults) == 1 and faults[0] == supervisor.fault and "failed 3 times in 60 s" in faults[0]
    assert any("stopped" in line for line in log.lines)
    supervisor.run(loop)  # faulted: not run again
    assert len(calls) == 3
    supervisor.reset()
    assert not supervisor.fault and supervisor.failures == 3


def test_failures_spread_out_do_not_fault():
    log, now = Log(), [0.0]
    supervisor = Supervisor("the service", log, max_failures=3, window_s=60.0, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 61.0
        assert supervisor.record(ValueError("rare")) is False
    assert supervisor.failures == 10 and not supervisor.fault and len(log.lines) == 1


def test_cause_names_the_error_and_where_it_was_raised():
    try:
        {}["missing"]
    except KeyError as error:
        text = cause(error)
    assert text.startswith("KeyError: 'missing' (at test_supervision.py:") and "test_cause_names" in text


def test_an_exception_while_the_process_stops_is_its_end_not_a_failure():
    log = Log()
    supervisor = Supervisor("the worker", log, stopping=lambda: True)
    loop, calls = _failing(100)
    supervisor.run(loop)
    assert len(calls) == 1 and supervisor.failures == 0 and not supervisor.fault and log.lines == []
