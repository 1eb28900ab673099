"""Fast DDS shared-memory segments that nobody owns any more, and their removal.

Each DDS participant (one per ROS process) keeps its outgoing messages in a segment file in /dev/shm, up to
16 MiB with the package's profile (config/fastdds.xml), which it removes when it leaves DDS. A process that
ends without leaving (SIGKILL, an OOM kill, a crash, os._exit before rclpy freed its context) leaves the
segment behind, in RAM, until the machine restarts. On 2026-12-07, 2,537 of them filled 21 GB of this 24 GB
machine: nodes took minutes to start and the kernel killed a training run.

The rule is Fast DDS's own (the `fastdds shm clean` command of eProsima's tools): while its participant
lives, a segment `fastdds_<16 hex digits>` has its lock file `<segment>_el` locked (flock, exclusive), and the
kernel releases that lock when the process ends, however it ends. A segment whose lock can be taken belongs to
no live process and is removed with its lock file; the lock is held while both are removed. Segments of live
processes are never touched. (Not that command itself: it needs psutil and runs whichever `python3` comes
first on PATH.) Port files (`fastdds_port<n>`, 50 KB each) are left alone: a new participant of the same
domain reuses them, so they do not pile up, and one could be taken over between the check and the removal.

    python -m pmp_ros.ros.shared_memory      # what the command line prints: removed N stale segments (M MiB)
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SHM_DIR = Path("/dev/shm")
_SEGMENT = re.compile(r"fastdds_[0-9a-z]{16}")
LOCK_SUFFIX = "_el"


@dataclass(frozen=True)
class Removed:
    """Stale segments removed, the bytes they held, and the segments left because a live process owns them."""

    segments: int
    bytes: int
    in_use: int


def remove_stale_segments(directory: Path = SHM_DIR) -> Removed:
    """Remove the Fast DDS segments in `directory` whose owner has ended (module docstring); the others stay."""
    removed = freed = in_use = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:  # no /dev/shm (not Linux): nothing of this kind
        return Removed(0, 0, 0)
    for name in names:
        if not _SEGMENT.fullmatch(name):
            continue
        segment = Path(directory) / name
        if not _lock_of(segment).exists():  # being created or removed right now: not ours to judge
            continue
        with _ownerless(segment) as stale:
            if not stale:
                in_use += 1
                continue
            size = _size(segment)
            for path in (segment, _lock_of(segment)):
                path.unlink(missing_ok=True)
            removed, freed = removed + 1, freed + size
    return Removed(removed, freed, in_use)


def is_stale(segment: Path) -> bool:
    """Whether the segment file exists and no live process owns it."""
    with _ownerless(segment) as stale:
        return stale and segment.exists()


@contextmanager
def _ownerless(segment: Path) -> Iterator[bool]:
    """True while this process holds the segment's lock, taken because its owner has ended; False if a live
    process holds it, or there is no lock file (being created or removed right now: not ours to judge)."""
    try:
        lock_fd = os.open(_lock_of(segment), os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(lock_fd)


def _lock_of(segment: Path) -> Path:
    return segment.with_name(segment.name + LOCK_SUFFIX)


def _size(path: Path) -> int:
    """Bytes the file takes in memory (tmpfs: its allocated blocks)."""
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


def describe(result: Removed) -> str:
    return (
        f"removed {result.segments} stale Fast DDS shared-memory segment(s) ({result.bytes / 2**20:.0f} MiB); "
        f"{result.in_use} in use by running processes"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: remove the stale segments and say what it did."""
    parser = argparse.ArgumentParser(prog="python -m pmp_ros.ros.shared_memory", description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, default=SHM_DIR, help="where Fast DDS keeps them")
    args = parser.parse_args(argv)
    print(describe(remove_stale_segments(args.directory)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
