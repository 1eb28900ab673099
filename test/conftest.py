"""Test-wide setup: every run is isolated from other ROS users of this machine (see ros_harness)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))

import ros_harness  # noqa: E402  (lives in test/helpers)


def pytest_configure(config):
    # Before any test imports rclpy: the domain, discovery range and ROS home are read at init.
    ros_harness.isolate_ros_environment()


def pytest_unconfigure(config):
    ros_harness.cleanup_run_dir()


@pytest.fixture
def ros_client():
    """A live rclpy node in the test process (see ros_harness.RosTestClient)."""
    client = ros_harness.RosTestClient()
    try:
        yield client
    finally:
        client.close()
