"""The cost of pmp_ros.objects3d.measure_objects per frame: centroid, box and normal of every instance, with
and without each instance's points for a cloud.

    python bench/bench_objects3d.py                                # 320x240 and 640x480, 50 repetitions
    python bench/bench_objects3d.py --repeats 3 --sizes 320x240    # smoke

Frames: the first scene of the TEST split's cluttered world (WorldConfig.cluttered, 30 objects placed) with
at least --instances visible objects, at each size; its first --instances ground-truth masks are measured on
the registered depth as a camera driver sends it (--depth mm: uint16 millimetres, 16UC1; m: float32
metres, 32FC1). Rows:
  given boxes, pixels   as the node would call it: each mask's box (Instance.box) and interior point
                        (locate_instances' u, v, which the node computes anyway) passed in;
  + cloud               the same, plus the points coloured from the frame, voxel-downsampled (--voxel) and
                        stacked into one cloud (stack_points);
  standalone            masks only: boxes and interior points (geometry.interior_point) found here.
Goal (the issue): a 640x480 frame with 20 instances adds <= 5 ms at p50, judged on the wall clock. Other
work on the cores shows in the wall-clock figures, so the machine's load average is printed with them, and
the median CPU time of this process beside them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pmp_ros.data import splits
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.geometry import interior_point
from pmp_ros.objects3d import measure_objects, stack_points

import benchlib

GOAL_MS = 5.0
GOAL_SIZE = (640, 480)


def frame(width: int, height: int, instances: int, depth_format: str):
    """(masks, depth, K, rgb, boxes, pixels) of the first TEST scene with >= instances visible objects; boxes
    (x0, y0, x1, y1) inclusive and interior pixels (u, v) as the node has them."""
    world = TabletopWorld(width, height, WorldConfig.cluttered(num_objects=(30, 30)))
    for seed in splits.TEST:
        scene = world.render(seed)
        if len(scene.objects) >= instances:
            break
    masks = [scene.mask(o.id) for o in scene.objects[:instances]]
    depth = np.rint(scene.depth * 1000).astype(np.uint16) if depth_format == "mm" else scene.depth
    boxes = [(o.bbox[0], o.bbox[1], o.bbox[2] - 1, o.bbox[3] - 1) for o in scene.objects[:instances]]
    return masks, depth, scene.K.matrix(), scene.rgb, boxes, [interior_point(m) for m in masks]


def timed_calls(fn, iterations: int, warmup: int) -> tuple[list[float], list[float]]:
    """(wall-clock seconds, CPU seconds of this process) of each of `iterations` calls of fn() after
    benchlib.warm_up. CPU time leaves out the time other processes held the core, which wall time includes."""
    benchlib.warm_up(fn, warmup)
    wall, cpu = [], []
    for _ in range(iterations):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=lambda text: [benchlib.parse_size(s) for s in text.split(",")])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--depth", choices=("mm", "m"), default="mm", help="uint16 mm (16UC1) or float32 m")
    parser.add_argument("--voxel", type=float, default=0.005, help="cloud voxel size, metres (0: every point)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    rows = []
    for width, height in args.sizes or benchlib.SIZES:
        masks, depth, k, rgb, boxes, pixels = frame(width, height, args.instances, args.depth)
        area = int(np.mean([m.sum() for m in masks]))

        def with_cloud():
            objects = measure_objects(masks, depth, k, boxes=boxes, pixels=pixels, cloud_rgb=rgb, voxel_m=args.voxel)
            return stack_points(objects)

        variants = {
            "given boxes, pixels": lambda: measure_objects(masks, depth, k, boxes=boxes, pixels=pixels),
            "+ cloud": with_cloud,
            "standalone": lambda: measure_objects(masks, depth, k),
        }
        for name, call in variants.items():
            wall, cpu = timed_calls(call, args.repeats, args.warmup)
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "what": name,
                    "instances": len(masks),
                    "area": area,
                    **benchlib.summary_ms(wall),
                    "cpu_median_ms": float(np.median(cpu)) * 1e3,
                }
            )
            if name == "+ cloud":
                rows[-1]["cloud_points"] = len(with_cloud().xyz)

    info = benchlib.machine({"depth": args.depth, "voxel_m": args.voxel})
    benchlib.print_machine(info)
    benchlib.print_table(
        "measure_objects per frame (wall clock; CPU p50: this process's CPU time)",
        rows,
        [
            ("size", "size", "s"),
            ("what", "measured", "s"),
            ("instances", "instances", "d"),
            ("area", "mean px", "d"),
            ("cloud_points", "cloud points", "d"),
            *benchlib.STAT_COLUMNS,
            ("cpu_median_ms", "CPU p50 ms", ".1f"),
        ],
    )
    goal = [r for r in rows if r["size"] == "{}x{}".format(*GOAL_SIZE) and r["what"] != "standalone"]
    for row in goal:
        verdict = "met" if row["median_ms"] <= GOAL_MS else "NOT met"
        print(
            f"goal p50 <= {GOAL_MS} ms at 640x480, {row['what']}: {row['median_ms']:.2f} ms wall "
            f"({row['cpu_median_ms']:.2f} ms CPU), {verdict}"
        )
    print(
        f"load average {info['load_average']} on {info['usable_cores']} cores: other processes on them inflate the "
        "wall-clock figures (the CPU p50 less so)"
    )
    benchlib.write_json(args.json, {"machine": info, "rows": rows})


if __name__ == "__main__":
    main()
