"""Scene generation speed of the procedural world on one core.

Usage: OMP_NUM_THREADS=1 python bench/bench_world.py [--scenes 300] [--width 320 --height 240]
Prints scenes per CPU second of this process (best of 3 runs; CPU time rather than wall time, so that
other load on a shared machine does not count) for the default and the cluttered world, with and without
a generated instruction, and for dataset samples (scene + seen-only masks + instruction).
"""

from __future__ import annotations

import argparse
import time

import cv2

from pmp_ros.data.dataset import TabletopDataset
from pmp_ros.data.instructions import generate_instructions
from pmp_ros.data.world import TabletopWorld, WorldConfig


def rate(fn, n: int, repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        start = time.process_time()
        for i in range(n):
            fn(i)
        best = max(best, n / (time.process_time() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core, as in a data-loader worker
    configs = (("default (3-12 objects)", WorldConfig()), ("cluttered (10-25 objects)", WorldConfig.cluttered()))
    for name, cfg in configs:
        world = TabletopWorld(args.width, args.height, cfg)
        world.render(0)
        scenes = rate(world.render, args.scenes)
        with_ins = rate(lambda s: generate_instructions(world.render(s), s), args.scenes)
        ds = TabletopDataset(world, seeds=range(args.scenes))
        samples = rate(ds.__getitem__, args.scenes)
        print(
            f"{name:28s} {args.width}x{args.height}: {scenes:6.0f} scenes/s, "
            f"{with_ins:6.0f} with instruction, {samples:6.0f} dataset samples/s"
        )


if __name__ == "__main__":
    main()
