"""Process environment for DDS, applied before rclpy starts.

Fast DDS's default shared-memory segment (512 KB) cannot hold one 640x480 rgb8 frame, so image
streams fall back to UDP and best-effort subscriptions drop frames (measured: 19 Hz of 30 Hz).
The package's profile (config/fastdds.xml) enlarges the segment. It is used unless the user already
chose a profile: an explicit FASTDDS_DEFAULT_PROFILES_FILE always wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

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
