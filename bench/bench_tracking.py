"""The cost of the node's tracking stage per frame (pmp_ros/perception/tracking_stage.py: TrackingStage.track, the
tracker with its image shift, 3D centroids and image check), beside the model.

    python bench/bench_tracking.py                                   # 320x240 and 640x480, 4 sequences each
    python bench/bench_tracking.py --sequences 1 --sizes 320x240     # smoke

Frames: the first --sequences tracking sequences of the TEST split (pmp_ros/data/sequences.py, 30 frames
each: the camera pans, objects slide, a target vanishes) rendered at each size, with depth. The shipped
model predicts every frame first at the node's tracking settings (tracking_stage.detection_settings), for
the sequence's classes; that is not timed. Then a fresh TrackingStage per sequence is given the frames in
order, as the node's worker gives them, with the tracker's defaults (TrackerParams) and once more with the
image check off (image_check_tolerance 0); each call is timed (wall clock, and this process's CPU time).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.sequences import TrackingSequenceConfig, sequence_frames, sequence_script, tracking_world
from pmp_ros.model.inference import Predictor
from pmp_ros.perception.tracking_stage import TrackingStage, detection_settings
from pmp_ros.tracking import TrackerParams

import benchlib


def predicted_sequences(model: Path, width: int, height: int, count: int, threads: int):
    """Per sequence (its prompts, [(rgb, depth_mm, K, Prediction)] per frame)."""
    cfg = TrackingSequenceConfig(width=width, height=height)
    world = tracking_world(cfg)
    predictor, model_cfg = Predictor.from_checkpoint(model, device="cpu")
    predictor.cfg = detection_settings(model_cfg.inference)
    benchlib.set_threads(threads)
    sequences = []
    for seed in splits.seeds(splits.TEST, count):
        script = sequence_script(world, seed, cfg)
        predictor.set_prompts(list(script.prompts), vocabulary.all_classes())
        frames = []
        for frame in sequence_frames(world, script, cfg):
            prediction = predictor.predict([frame.rgb], semantic=False)[0]
            frames.append((frame.rgb, frame.depth_mm, frame.k, prediction))
        sequences.append((tuple(script.prompts), frames))
    return sequences, model_cfg.inference.score_threshold


def time_stage(sequences, params: TrackerParams) -> tuple[list[float], list[float], int]:
    """(wall seconds, CPU seconds) of each TrackingStage.track call over the sequences, and the tracks
    published in all."""
    wall, cpu, published = [], [], 0
    for prompts, frames in sequences:
        stage = TrackingStage()
        for rgb, depth, k, prediction in frames:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            tracked, _ = stage.track(prediction, rgb, depth, k, prompts, params)
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
            published += len(tracked.instances)
    return wall, cpu, published


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=lambda text: [benchlib.parse_size(s) for s in text.split(",")])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--model", type=Path, default=benchlib.DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the (untimed) predictions")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    rows = []
    for width, height in args.sizes or benchlib.SIZES:
        sequences, publish_score = predicted_sequences(args.model, width, height, args.sequences, args.threads)
        instances = np.mean([len(p.instances) for _, frames in sequences for *_, p in frames])
        defaults = TrackerParams(publish_score=publish_score)
        for name, params in (("defaults", defaults), ("image check off", replace(defaults, image_check_tolerance=0))):
            wall, cpu, published = time_stage(sequences, params)
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "what": name,
                    "instances": float(instances),
                    "published": published / len(wall),
                    **benchlib.summary_ms(wall),
                    "cpu_median_ms": float(np.median(cpu)) * 1e3,
                }
            )

    info = benchlib.machine({"sequences": args.sequences, "model": str(args.model)})
    benchlib.print_machine(info)
    benchlib.print_table(
        "TrackingStage.track per frame (wall clock; CPU p50: this process's CPU time)",
        rows,
        [
            ("size", "size", "s"),
            ("what", "tracker", "s"),
            ("instances", "instances/frame", ".1f"),
            ("published", "tracks/frame", ".1f"),
            *benchlib.STAT_COLUMNS,
            ("cpu_median_ms", "CPU p50 ms", ".1f"),
        ],
    )
    benchlib.write_json(args.json, {"machine": info, "rows": rows})


if __name__ == "__main__":
    main()
