"""Per-frame cost of the zoomed look (inference.zoom_*): Predictor.predict on validation scenes with their
instructions' prompts, each checkpoint in turn on the same frame, so load changes hit all of them alike.

    python bench/bench_zoom.py --model models/pmp_default.safetensors --name off \
        --model runs/zoom_check/ckpt/zoom1.safetensors --name zoom1 --scenes 30 --rounds 3
    python bench/bench_zoom.py --model models/pmp_default.safetensors --model models/pmp_default.safetensors \
        --name a --name b --scenes 2 --rounds 1 --sizes 320x240          # smoke run

bench_model.py's frame has no candidate of its one prompt, so there the zoom costs nothing; the cost that
matters is on frames whose prompted classes have small candidates, which validation scenes have. Reported
per checkpoint and camera size: p50 and p95 of the frame time, the ratio of p50s to the first checkpoint's,
and the windows the zoomed look ran per frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.instructions import generate_instructions
from pmp_ros.data.world import TabletopWorld
from pmp_ros.eval.evaluate import ABSENT_PROB
from pmp_ros.language.parse import InstructionParseError, parse_instruction
from pmp_ros.model.inference import Predictor

import benchlib


def validation_frames(width: int, height: int, count: int) -> list[tuple[np.ndarray, tuple[str, ...]]]:
    """(rgb, prompts) of the first `count` validation scenes rendered at width x height that have an
    instruction, its prompts as the robot parses them (as the evaluation draws them: evaluate.eval_cases)."""
    world = TabletopWorld(width, height)
    frames = []
    for seed in splits.seeds(splits.VALIDATION, count):
        scene = world.render(seed)
        found = generate_instructions(scene, np.random.default_rng(seed), n=1, absent_prob=ABSENT_PROB)
        try:
            prompts = parse_instruction(found[0].text).targets if found else ()
        except InstructionParseError:
            prompts = ()
        if prompts:
            frames.append((scene.rgb, prompts))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--name", action="append")
    parser.add_argument("--scenes", type=int, default=30, help="first validation scenes with an instruction")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the scenes")
    parser.add_argument("--sizes", default="320x240,640x480", help="camera image sizes, comma separated")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = args.name or [m.stem for m in args.model]
    if len(names) != len(args.model):
        parser.error("give one --name per --model (or none)")

    threads = benchlib.set_threads(args.threads)
    predictors = [Predictor.from_checkpoint(path, "cpu", "fp32")[0] for path in args.model]
    windows = {name: 0 for name in names}
    for name, predictor in zip(names, predictors):
        forward = predictor.forward

        def counting(images, *rest, _name=name, _forward=forward):
            if rest[1:] and rest[1] is not None:  # the zoomed look passes its crop size
                windows[_name] += len(images)
            return _forward(images, *rest)

        predictor.forward = counting
    context = vocabulary.all_classes()
    info = benchlib.machine({"models": dict(zip(names, map(str, args.model))), "threads": threads})
    benchlib.print_machine(info)
    rows = []
    for width, height in (benchlib.parse_size(s) for s in args.sizes.split(",")):
        frames = validation_frames(width, height, args.scenes)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            windows[name] = 0
        for round_index in range(args.rounds + 1):  # round 0 warms up, untimed
            for rgb, prompts in frames:
                for name, predictor in zip(names, predictors):
                    predictor.set_prompts(prompts, context)
                    start = time.perf_counter()
                    predictor.predict([rgb], semantic=False)
                    if round_index:
                        samples[name].append(time.perf_counter() - start)
        base = float(np.median(samples[names[0]]))
        for name in names:
            stats = benchlib.summary_ms(samples[name])
            rows.append(
                {
                    "image": f"{width}x{height}",
                    "model": name,
                    **stats,
                    "ratio_p50": float(np.median(samples[name])) / base,
                    "windows_per_frame": windows[name] / ((args.rounds + 1) * len(frames)),
                }
            )
    benchlib.print_table(
        f"Predictor.predict, one frame, the instruction's prompts + {len(context)} context classes, "
        f"{len(frames)} validation scenes x {args.rounds} rounds",
        rows,
        [
            ("image", "image", "s"),
            ("model", "model", "s"),
            *benchlib.STAT_COLUMNS,
            ("ratio_p50", "p50 / first", ".2f"),
            ("windows_per_frame", "windows/frame", ".2f"),
        ],
    )
    benchlib.write_json(args.json, {"benchmark": "bench_zoom", "machine": info, "frames": rows})


if __name__ == "__main__":
    main()
