"""Process environment for DDS, applied before rclpy starts.

Fast DDS's default shared-memory segment (512 KB) cannot hold one 640x480 rgb8 frame, so image
streams fall back to UDP and best-effort subscriptions drop frames (measured: 19 Hz of 30 Hz).
The package's profile (config/fastdds.xml) enlarges the segment. It is used unless the user already
chose a profile: an explicit FASTDDS_DEFAULT_PROFILES_FILE always wins.
"""

from __future__ import annotations

import os
import random
from collections.abc import MutableMapping
from pathlib import Path

from pmp_ros.paths import config_file

PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds.xml"


def configure_dds_environment(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point Fast DDS at the package's profile unless one is set; returns the profile in use."""
    environ = os.environ if environ is None else environ
    if not environ.get(PROFILE_VARIABLE):
        profile = config_file(PROFILE_NAME)
        if profile.is_file():
            environ[PROFILE_VARIABLE] = str(profile)
    return environ.get(PROFILE_VARIABLE)


def isolate_environment(
    run_dir: Path,
    domain_id: int | None = None,
    package_profile: bool = False,
    environ: MutableMapping[str, str] | None = None,
) -> int:
    """Give this process (and the nodes it starts) a DDS domain of its own (random in 1..101, valid on every
    platform; 0 is everyone's default), discovery on this machine only, and a ROS home and log folder in
    `run_dir`, so parallel runs never see each other and nothing is written to ~/.ros. package_profile:
    always the package's Fast DDS profile (as the node uses), even if the user set another. Returns the
    domain id."""
    environ = os.environ if environ is None else environ
    domain = domain_id if domain_id is not None else random.SystemRandom().randint(1, 101)
    environ.update(
        {
            "ROS_DOMAIN_ID": str(domain),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_HOME": str(Path(run_dir) / "ros_home"),
            "ROS_LOG_DIR": str(Path(run_dir) / "ros_log"),
        }
    )
    environ.pop("ROS_STATIC_PEERS", None)
    if package_profile:
        environ.pop(PROFILE_VARIABLE, None)
    configure_dds_environment(environ)
    return domain
