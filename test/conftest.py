"""Test-wide setup: every run is isolated from other ROS users of this machine (see ros_harness); one small
model file for every test that starts a node on one; the ROS/DDS tests marked `slow`, so that
`scripts/test.sh -m "not slow"` is the fast lane."""

import re

import pytest

from pmp_ros.ros.shared_memory import describe, remove_stale_segments

import ros_harness  # test/helpers is on the import path (pytest.ini: pythonpath)

# What in a test module's source starts ROS nodes or talks over DDS: the harness's node runner and client, a
# node process or an in-process node, the demo and bag replays (each starts a node). Such tests wait for
# discovery, a node's startup or a replay.
DDS_USE = re.compile(
    r"\b(running_node|RosTestClient|ros_client|NodeProcess|SegmenterNode|Player)\b|\brclpy\.init\b"
    r"|\bpmp_ros\.bags\.evaluate\b|\bpmp_ros\.demo\b|\bfrom pmp_ros import demo\b"
)


def pytest_configure(config):
    # Before any test imports rclpy: the domain, discovery range and ROS home are read at init.
    ros_harness.isolate_ros_environment()
    _remove_stale_dds_segments("before the tests")


def pytest_unconfigure(config):
    ros_harness.cleanup_run_dir()
    _remove_stale_dds_segments("after the tests")


def _remove_stale_dds_segments(when):
    """Tests SIGKILL processes on purpose, and so may an earlier run or the OOM killer: each such process
    leaves its Fast DDS segment (16 MiB) in /dev/shm. Thousands of them filled a 24 GB machine and made every
    node start take minutes (CI, 2026-12-07). Only segments of ended processes are removed."""
    removed = remove_stale_segments()
    if removed.segments:
        print(f"\n{when}: {describe(removed)}")


def pytest_collection_modifyitems(config, items):
    """Mark every test of a ROS/DDS module (its source matches DDS_USE) slow."""
    verdicts: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in verdicts:
            verdicts[path] = bool(DDS_USE.search(item.path.read_text()))
        if verdicts[path]:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A small real checkpoint (model_fixtures.write_small_checkpoint) for the nodes, demos and replays the
    tests start; written once per run, never changed."""
    from model_fixtures import write_small_checkpoint

    return write_small_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture
def ros_client():
    """A live rclpy node in the test process (see ros_harness.RosTestClient)."""
    client = ros_harness.RosTestClient()
    try:
        yield client
    finally:
        client.close()
