"""pmp-write-bag: record an evaluation bag (mcap or sqlite3) of the procedural world or of real photos.

    pmp-write-bag bags/world_10s --seconds 10 --storage mcap
    pmp-write-bag bags/tracking --source tracking --seconds 30 --scene-seconds 3
    pmp-write-bag bags/photos --source photos --storage sqlite3

Topics and the ground-truth format: pmp_ros/bags/messages.py and docs/bags.md. Each message's bag time is
its header stamp, so a player reproduces the camera's timing.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from pmp_ros.bags.messages import BagTopics, frame_messages
from pmp_ros.bags.storage import STORAGES, BagWriter
from pmp_ros.data.sequences import TrackingSequenceConfig, tracking_stream
from pmp_ros.data.streams import SequenceConfig, StreamFrame, procedural_stream

DEFAULT_TOPICS = BagTopics()  # the layout pmp-write-bag records (pmp_ros/bags/messages.py)


def write_bag(
    path: Path,
    frames: Iterable[StreamFrame],
    storage: str = "mcap",
    topics: BagTopics = DEFAULT_TOPICS,
    total: int | None = None,
    progress: bool = False,
) -> int:
    """Record frames into a new bag at `path` (must not exist); returns the number of frames."""
    count, instruction = 0, None
    with BagWriter(path, storage) as writer:
        for frame in tqdm(frames, total=total, unit="frame", desc=f"writing {Path(path).name}", disable=not progress):
            changed = frame.instruction != instruction
            instruction = frame.instruction
            for role, msgtype, data in frame_messages(frame, changed):
                writer.write(getattr(topics, role), msgtype, frame.stamp_ns, data)
            count += 1
    return count


def _parser() -> argparse.ArgumentParser:
    defaults = SequenceConfig()
    parser = argparse.ArgumentParser(
        prog="pmp-write-bag", description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("output", type=Path, help="bag folder to create")
    parser.add_argument(
        "--source",
        choices=("procedural", "tracking", "photos"),
        default="procedural",
        help="procedural tabletop world; tracking sequences of it (moving objects, an occluder, a vanishing "
        "target, ids stable within a scene: pmp_ros/data/sequences.py); or the offline real photos with masks",
    )
    parser.add_argument("--storage", choices=tuple(STORAGES), default="mcap")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="procedural: stream length")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help=f"frame rate (default {defaults.fps:g} procedural, {TrackingSequenceConfig.fps:g} tracking, 10 photos)",
    )
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument(
        "--scene-seconds",
        type=float,
        default=defaults.scene_seconds,
        help="procedural, tracking: time each scene (seed) stays in view before the next one",
    )
    parser.add_argument(
        "--instruction-seconds",
        type=float,
        default=defaults.instruction_seconds,
        help="procedural: a new generated instruction this often (and at every new scene)",
    )
    parser.add_argument(
        "--pan-deg",
        type=float,
        default=defaults.pan_deg,
        help="procedural, tracking: amplitude of the camera's slow pan (0 = static camera)",
    )
    parser.add_argument(
        "--first-seed", type=int, default=defaults.first_seed, help="procedural, tracking: first scene seed"
    )
    parser.add_argument("--seconds-per-photo", type=float, default=1.0, help="photos: time each photo is shown")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry pmp-write-bag."""
    args = _parser().parse_args(argv)
    if args.output.exists():
        if not args.overwrite:
            print(f"pmp-write-bag: {args.output} exists (use --overwrite)", file=sys.stderr)
            return 1
        shutil.rmtree(args.output)
    if args.source == "photos":
        from pmp_ros.data.photos import photo_stream

        frames, total = photo_stream(args.fps or 10.0, args.seconds_per_photo), None
    elif args.source == "tracking":
        fps = args.fps or TrackingSequenceConfig.fps
        cfg = TrackingSequenceConfig(
            width=args.width,
            height=args.height,
            fps=fps,
            num_frames=max(1, round(args.scene_seconds * fps)),
            pan_deg=args.pan_deg,
        )
        count = max(1, math.ceil(args.seconds / args.scene_seconds))
        frames, total = tracking_stream(range(args.first_seed, args.first_seed + count), cfg), count * cfg.num_frames
    else:
        cfg = SequenceConfig(
            width=args.width,
            height=args.height,
            fps=args.fps or SequenceConfig.fps,
            seconds=args.seconds,
            scene_seconds=args.scene_seconds,
            instruction_seconds=args.instruction_seconds,
            pan_deg=args.pan_deg,
            first_seed=args.first_seed,
        )
        frames, total = procedural_stream(cfg), cfg.num_frames
    count = write_bag(args.output, frames, args.storage, total=total, progress=True)
    print(f"wrote {count} frames to {args.output} ({args.storage})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
