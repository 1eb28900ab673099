"""The node under test in its own process, in a DDS domain of the tool's choosing, always stopped.

Tools (pmp-eval-bag, pmp-demo) start `python -m pmp_ros.ros.node` with parameters, wait for its ready line,
and stop it with SIGINT (then SIGTERM, SIGKILL). Its output goes to a log file that the tool's report names.

A tool that is killed (SIGKILL, an OOM kill, a crash) cannot stop its node, and the node, in a session of
its own, would run on as an orphan. So every child is started through a small guard (die_with_parent_argv)
that asks Linux to SIGKILL it when its parent ends (prctl PR_SET_PDEATHSIG, kept across exec) and then
executes the program. The guard runs before the program rather than in a preexec_fn, which is not safe in a
process with threads (the tools have executor threads). Linux ties the death signal to the thread that
started the child: start children from a thread that lives as long as they should (the main thread).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pmp_ros.ros.environment import claim_domains, configure_dds_environment
from pmp_ros.ros.node import READY_TEXT
from pmp_ros.ros.shared_memory import remove_stale_segments

STARTUP_TIMEOUT_S = 180.0
PARENT_GONE_EXIT_CODE = 125  # the guard's exit code when the parent ended before the program started

# The guard: arm the death signal, check the parent is still the one that started us (it may have ended
# before the signal was armed), then become the program. argv: parent pid, then the program's argv.
_GUARD = textwrap.dedent(
    f"""
    import ctypes, os, signal, sys
    if sys.platform == "linux":
        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            sys.exit(f"cannot tie {{sys.argv[2]}} to its parent: prctl: {{os.strerror(ctypes.get_errno())}}")
    if os.getppid() != int(sys.argv[1]):
        print(f"not starting {{sys.argv[2]}}: its parent (pid {{sys.argv[1]}}) has ended", file=sys.stderr)
        sys.exit({PARENT_GONE_EXIT_CODE})
    os.execvp(sys.argv[2], sys.argv[2:])
    """
)


def user_domain(environ: Mapping[str, str] | None = None) -> int | None:
    """The user's ROS_DOMAIN_ID, or None when it is not set (or not a number)."""
    environ = os.environ if environ is None else environ
    value = environ.get("ROS_DOMAIN_ID", "").strip()
    return int(value) if value.isdigit() else None


def pick_domains(count: int, environ: Mapping[str, str] | None = None) -> list[int]:
    """ROS domain ids for `count` isolated runs: the user's ROS_DOMAIN_ID for a single run when set, else
    distinct ids claimed on this machine (environment.claim_domains: no other process has them; give them
    back with environment.release_domains). Several runs in the user's domain must go one after another
    (pmp-eval-bag does so): nodes side by side would see each other's topics."""
    domain = user_domain(environ)
    if count == 1 and domain is not None:
        return [domain]
    return claim_domains(count)


def die_with_parent_argv(argv: Sequence[str], parent_pid: int | None = None) -> list[str]:
    """argv that runs `argv` so that it is SIGKILLed when `parent_pid` (default: this process) ends (Linux;
    elsewhere it only runs it). The program keeps its pid and command line (the guard execs it)."""
    parent = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-c", _GUARD, str(parent), *argv]


def ros_environment(domain_id: int) -> dict[str, str]:
    """This process's environment for a ROS program in `domain_id`: discovery limited to this machine
    (unless the user chose a range) and the package's Fast DDS profile (large shared-memory segment)."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "PYTHONUNBUFFERED": "1"}
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    configure_dds_environment(env)
    return env


class ChildProcess:
    """A program in its own process (own session, output to a log file), always stopped on exit: SIGINT
    (clean shutdown), then SIGTERM, then SIGKILL; SIGKILLed by Linux if this process ends without stopping
    it (die_with_parent_argv).

    with ChildProcess([sys.executable, "-m", "pmp_ros.ros.node", ...], env, log_path) as proc:
        proc.wait_for_output("ready", 60)
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, name: str = "process"):
        self.argv, self.env, self.log_path, self.name = list(argv), dict(env), Path(log_path), name
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            die_with_parent_argv(self.argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def output(self) -> str:
        """Everything it printed so far (readable after stop() too)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> float:
        """Seconds until `text` appeared in its output; RuntimeError with its last lines if it exits first
        or takes longer than `timeout`."""
        start = time.monotonic()
        while text not in self.output():
            if self.returncode is not None or time.monotonic() - start > timeout:
                reason = (
                    f"exited with code {self.returncode}"
                    if self.returncode is not None
                    else f"did not print {text!r} within {timeout:.0f} s"
                )
                tail = "\n".join(self.output().strip().splitlines()[-20:])
                raise RuntimeError(f"{self.name} {reason} (log {self.log_path}):\n{tail}")
            time.sleep(0.05)
        return time.monotonic() - start

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL (timeout s for the clean shutdown); returns the exit code."""
        if self.process is None:
            return None
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.process.poll() is not None:
                break
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        if self.process.returncode == -signal.SIGKILL:  # it could not leave DDS: its segments stay behind
            remove_stale_segments()
        if not self._log.closed:
            self._log.close()
        return self.process.poll()


class NodeProcess(ChildProcess):
    """The pmp_segmenter node with `params` in `domain_id`, logging to `log_path`.

    with NodeProcess({"model_path": ..., "device": "cpu"}, domain_id, log_path) as node: node.wait_ready()
    """

    def __init__(self, params: Mapping[str, object], domain_id: int, log_path: Path):
        args = [x for name, value in params.items() for x in ("-p", f"{name}:={_ros_value(value)}")]
        super().__init__(
            [sys.executable, "-m", "pmp_ros.ros.node", "--ros-args", *args],
            ros_environment(domain_id),
            log_path,
            name="the node",
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Seconds until the node printed its ready line (RuntimeError if it exits or takes too long)."""
        return self.wait_for_output(READY_TEXT, timeout)


def _ros_value(value: object) -> str:
    """A parameter value as --ros-args reads it (YAML): booleans lower case."""
    return str(value).lower() if isinstance(value, bool) else str(value)
