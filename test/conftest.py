"""Test-wide setup: every run is isolated from other ROS users of this machine (see ros_harness)."""

import pytest

import ros_harness  # test/helpers is on the import path (pytest.ini: pythonpath)


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
