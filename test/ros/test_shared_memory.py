"""Fast DDS shared memory (pmp_ros/ros/shared_memory.py): the node's stop and a tool's SIGKILL of a node leave
no segment in /dev/shm, and only segments whose owner has ended are ever removed.

2,537 leaked segments (21 GB) once filled this machine: every node stop left its two segments behind."""

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pmp_ros.ros.node import READY_TEXT
from pmp_ros.ros.process import ChildProcess, ros_environment
from pmp_ros.ros.shared_memory import SHM_DIR, is_stale, remove_stale_segments

from ros_harness import NodeProcess, node_argv, wait_until

SEGMENT_IN_MAPS = re.compile(r"/dev/shm/(fastdds_[0-9a-z]{16})$", re.M)

# Holds an exclusive lock on the file it is given, as a live participant holds its segment's, until killed.
LOCK_HOLDER = (
    "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
    "print('held', flush=True); time.sleep(600)"
)


def _segments_mapped_by(pid):
    """The Fast DDS segments a process has mapped: its participant's own, and those of peers it reads from."""
    return set(SEGMENT_IN_MAPS.findall(Path(f"/proc/{pid}/maps").read_text()))


def _make_segment(directory, name, payload=b"x" * 8192):
    (directory / name).write_bytes(payload)
    (directory / f"{name}_el").touch()
    return directory / name


def test_only_segments_whose_owner_ended_are_removed(tmp_path):
    alive = _make_segment(tmp_path, "fastdds_00000000000000a1")
    ended = _make_segment(tmp_path, "fastdds_00000000000000e2")
    being_made = tmp_path / "fastdds_00000000000000c3"  # no lock file yet: not judged
    being_made.write_bytes(b"x")
    others = [tmp_path / name for name in ("fastdds_port7411", "fastdds_port7411_el", "sem.fastdds_port7411_mutex")]
    for path in others:
        path.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path / f"{alive.name}_el")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = remove_stale_segments(tmp_path)
        assert (result.segments, result.in_use) == (1, 1)
        assert result.bytes >= 8192
        assert not ended.exists() and not (tmp_path / f"{ended.name}_el").exists()
        assert alive.exists() and (tmp_path / f"{alive.name}_el").exists()
        assert being_made.exists() and all(path.exists() for path in others)
        assert not is_stale(alive)
    finally:
        holder.kill()
        holder.wait()
    # The kernel releases the lock of a killed owner: now that segment is stale too.
    assert is_stale(alive)
    assert remove_stale_segments(tmp_path).segments == 1 and not alive.exists()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stopped_node_leaves_no_shared_memory(model_file, signame):
    with NodeProcess(node_argv({"model_path": str(model_file), "device": "cpu"}), name=f"shm_{signame}") as proc:
        proc.wait_for_output(READY_TEXT, 180)
        mapped = _segments_mapped_by(proc.process.pid)
        assert mapped, "the node maps no Fast DDS segment: is the shared-memory transport off?"
        proc.process.send_signal(getattr(signal, signame))
        assert proc.process.wait(60) == 0, proc.output()
    # Segments of live peers (other tests' processes) are not the node's: only ownerless ones are leaks.
    assert not [name for name in mapped if is_stale(SHM_DIR / name)], "the node's stop left its segments"


# A DDS participant that ignores SIGINT and SIGTERM, as a node stuck in a long call would: its tool must SIGKILL it.
STUCK_PARTICIPANT = textwrap.dedent(
    """
    import re, signal, time
    import rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("stuck")
    node.create_publisher(String, "chatter", 1).publish(String(data="up"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("up", flush=True)
    time.sleep(600)
    """
)


def test_a_child_its_tool_had_to_kill_leaves_no_shared_memory(tmp_path):
    env = ros_environment(int(os.environ["ROS_DOMAIN_ID"]))
    with ChildProcess([sys.executable, "-c", STUCK_PARTICIPANT], env, tmp_path / "stuck.log", name="stuck") as child:
        child.wait_for_output("up", 120)
        mapped = wait_until(lambda: _segments_mapped_by(child.process.pid), 30, what="its segment")
        assert child.stop(timeout=1.0) == -signal.SIGKILL, child.output()
    assert not [name for name in mapped if (SHM_DIR / name).exists() and is_stale(SHM_DIR / name)]
