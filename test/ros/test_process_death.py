"""A program started with ChildProcess (a tool's node) dies with the tool even when the tool is SIGKILLed and
cannot stop it (issue #26: a SIGKILLed pmp-eval-bag left its node running)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ros_harness import process_running, wait_until

# A tool: starts a long-running child through ChildProcess, prints the child's pid, then waits for its end.
TOOL = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pmp_ros.ros.process import ChildProcess

    log = Path(sys.argv[1])
    with ChildProcess([sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(600)"],
                      {}, log, name="sleeper") as child:
        child.wait_for_output("child up", 120)
        print(child.process.pid, flush=True)
        time.sleep(600)
    """
)


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
def test_the_child_dies_when_its_parent_is_killed(tmp_path, signame):
    tool = subprocess.Popen(
        [sys.executable, "-c", TOOL, str(tmp_path / "child.log")], stdout=subprocess.PIPE, text=True
    )
    child_pid = None
    try:
        line = tool.stdout.readline()  # the child's pid, once it runs
        assert line.strip().isdigit(), (line, (tmp_path / "child.log").read_text(errors="replace"))
        child_pid = int(line)
        assert process_running(child_pid)
        tool.send_signal(getattr(signal, signame))  # neither lets the tool's `with` stop the child
        tool.wait(60)
        wait_until(lambda: not process_running(child_pid), 30, interval=0.05, what="the orphaned child to end")
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        if child_pid is not None and process_running(child_pid):
            os.kill(child_pid, signal.SIGKILL)  # the test started it (through the tool): leave nothing behind


def test_a_child_whose_parent_is_already_gone_does_not_start(tmp_path):
    # The guard checks the parent after arming the death signal: a parent that died in between is seen.
    from pmp_ros.ros.process import die_with_parent_argv

    run = subprocess.run(
        die_with_parent_argv([sys.executable, "-c", "print('started')"], parent_pid=1_999_999_999),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "started" not in run.stdout
    assert "parent" in run.stderr
