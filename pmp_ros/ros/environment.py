"""Process environment for DDS, applied before rclpy starts.

Fast DDS's default shared-memory segment (512 KB) cannot hold one 640x480 rgb8 frame, so image
streams fall back to UDP and best-effort subscriptions drop frames (measured: 19 Hz of 30 Hz).
The package's profile (config/fastdds.xml) enlarges the segment. It is used unless the user already
chose a profile: an explicit FASTDDS_DEFAULT_PROFILES_FILE always wins.

Runs that need a domain of their own (test runs, demos, benchmarks, bag evaluations) claim it: a random
id that no other process of this machine holds, locked until this process ends or releases it. Random ids
alone collided: a 30-minute fuzz run read another test run's node counters on its domain.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import IO

from pmp_ros.paths import config_file

PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds.xml"
DOMAIN_IDS = range(1, 102)  # valid on every platform; 0 is everyone's default
_claimed: dict[int, IO] = {}  # this process's domains: id -> its lock file, held open


def claim_domains(count: int) -> list[int]:
    """`count` distinct random domain ids in 1..101 that no process of this machine has claimed; each stays
    this process's (an exclusive lock on <tmp>/pmp_ros_domains/<id>.lock, which the system drops when the
    process ends) until release_domains. RuntimeError when fewer than `count` are free."""
    folder = Path(tempfile.gettempdir()) / "pmp_ros_domains"
    folder.mkdir(mode=0o777, exist_ok=True)
    chosen: list[int] = []
    for domain in random.SystemRandom().sample(DOMAIN_IDS, len(DOMAIN_IDS)):
        if len(chosen) == count:
            break
        if domain in _claimed:
            continue
        try:
            lock = open(folder / f"{domain}.lock", "a")  # noqa: SIM115 (held open while claimed)
        except OSError:  # another user's lock file
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another process
            lock.close()
            continue
        _claimed[domain] = lock
        chosen.append(domain)
    if len(chosen) < count:
        release_domains(chosen)
        raise RuntimeError(
            f"only {len(chosen)} of {count} ROS domain ids are free on this machine (other runs hold the rest, "
            f"see {folder}); set ROS_DOMAIN_ID, or wait for them"
        )
    return chosen


def release_domains(domains: Iterable[int]) -> None:
    """Give back domains this process claimed (others are ignored)."""
    for domain in domains:
        lock = _claimed.pop(domain, None)
        if lock is not None:
            lock.close()


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
    """Give this process (and the nodes it starts) a DDS domain of its own (claimed: claim_domains),
    discovery on this machine only, and a ROS home and log folder in `run_dir`, so parallel runs never see
    each other and nothing is written to ~/.ros. package_profile: always the package's Fast DDS profile (as
    the node uses), even if the user set another. Returns the domain id."""
    environ = os.environ if environ is None else environ
    domain = domain_id if domain_id is not None else claim_domains(1)[0]
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
