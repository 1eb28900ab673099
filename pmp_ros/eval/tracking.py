"""Tracking metrics: the model's instances over tracking sequences, frame by frame and through the tracker.

    python -m pmp_ros.eval.tracking --sequences 60 --validation-sequences 60 --frames 30 \\
        --model models/pmp_default.safetensors --jobs 2 --cache runs/tracking_cache --out docs/results/tracking.json

Sequences (pmp_ros.data.sequences, default TrackingSequenceConfig: 320x240 at 10 fps): the first
--validation-sequences seeds of the validation split choose the tracker's parameters (a small grid, below);
the first --sequences seeds of the evaluation split are reported. Every frame goes through the node's frame
pipeline (pmp_ros.perception): prompted with the sequence's classes (every instance of each) and the rest of
the vocabulary as context (the node uses its model's training classes), its score threshold lowered to
tracking.DETECTION_FLOOR (as the node's while tracking) so the tracker also sees weak instances; the tracking
stage's cues (TrackingStage.observe: each instance's 3D centroid from the frame's depth, the camera's image
shift from the previous frame, the image) are recorded with the prediction.

Two outputs per frame, scored against the same truth:
- per-frame: what the node publishes with tracking off, the instances scoring >= the model's own score
  threshold (above_threshold), with their per-frame ids (Instance.id: 1..n by score in each frame);
- tracked: what the node publishes with tracking on, a fresh tracking stage (TrackingStage.follow) fed every
  instance (>= DETECTION_FLOOR): its published tracks (track ids, masks; a missed track's predicted mask
  where no found one is).
The model's part (record_sequence) is nearly all of the time: --jobs runs sequences in parallel processes
(one torch thread each), and --cache keeps each sequence's records (pickles, under a key of the model file's
hash, the sequence config and DETECTION_FLOOR), so a tracker change is evaluated again in minutes.
Truth, matching and the metrics (IDF1, ID switches, MOTA, false positives, misses, target flicker rate):
pmp_ros.eval.metrics.track_metrics, which pmp-eval-bag uses on the node's published results too.
Goals (issue 16): IDF1 tracked > per-frame, and flicker rate tracked <= half of per-frame.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import pickle
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.sequences import TrackingSequenceConfig, sequence_frames, sequence_script, tracking_world
from pmp_ros.data.streams import StreamFrame
from pmp_ros.eval.metrics.bootstrap import interval, pooled, unit_draws
from pmp_ros.eval.metrics.track_metrics import (
    MATCH_IOU,
    MIN_VISIBLE_AREA,
    FrameTargets,
    Output,
    Score,
    visible_target_ids,
)
from pmp_ros.eval.report import markdown_table
from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.model.checkpoint import read_checkpoint
from pmp_ros.model.inference import Instance, Prediction, Predictor
from pmp_ros.paths import model_file
from pmp_ros.perception.frame import FramePipeline
from pmp_ros.perception.tracking_stage import FrameCues, TrackedFrame, TrackingStage, above_threshold
from pmp_ros.tracking import DETECTION_FLOOR, TrackerParams, mask_iou

PREDICT_BATCH = 5
RECORD_FORMAT = 3  # FrameRecord's fields: raise when they change, so that a cache of older records is not read
# The validation grid: every combination of these TrackerParams fields; the others keep their defaults.
GRID = {
    "new_track_score": (0.25, 0.3),
    "min_hits": (1, 2),
    "max_misses": (10, 20),
    "publish_misses": (1, 2),
    "miss_decay": (0.8, 1.0),
    "max_cost": (0.7, 0.9),
    "image_check_tolerance": (0.0, 20.0),
}


@dataclass(frozen=True)
class RecordedInstance:
    """An instance of a recorded prediction without its mask (label_image == id, made again by
    FrameRecord.prediction): a frame's instances share its label image, so that a split's records fit in
    memory. Fields as model.inference.Instance's."""

    id: int
    label: str
    prompt_index: int
    score: float
    box: tuple[int, int, int, int]
    area: int
    embedding: np.ndarray | None


@dataclass(frozen=True, eq=False)
class FrameRecord(FrameTargets):
    """One frame: the truth (FrameTargets); the prompts; the model's prediction at DETECTION_FLOOR (its label
    image, uint16 [H,W], and its instances best first) and what the tracker reads of the frame beside them
    (TrackingStage.observe: centroids, the camera's image shift, the image). A record without cues (None)
    is followed without centroids, shift or image check."""

    prompts: tuple[str, ...] = ()
    label_image: np.ndarray | None = None
    instances: tuple[RecordedInstance, ...] = ()
    cues: FrameCues | None = None

    def prediction(self) -> Prediction:
        """The recorded prediction, each instance with its mask."""
        label_image = self.label_image if self.label_image is not None else np.zeros_like(self.instance_image)
        instances = [
            Instance(i.id, i.label, i.prompt_index, i.score, i.box, i.area, label_image == i.id, i.embedding)
            for i in self.instances
        ]
        return Prediction(label_image, instances, None)


def record_sequence(predictor: Predictor, frames: Sequence[StreamFrame]) -> list[FrameRecord]:
    """The frame pipeline's predictions (at the predictor's threshold) on a sequence's frames, for every
    instance of the sequence's classes with the rest of the vocabulary as context, and the tracking stage's
    cues of each frame (centroids from the frame's depth, image shifts)."""
    pipeline = FramePipeline(predictor, vocabulary.all_classes())
    prompts = frames[0].prompts
    plan = pipeline.plan(ParsedInstruction(tuple(prompts), (True,) * len(prompts)))
    stage, records = TrackingStage(), []
    for start in range(0, len(frames), PREDICT_BATCH):
        batch = frames[start : start + PREDICT_BATCH]
        for frame, prediction in zip(batch, pipeline.predict([f.rgb for f in batch], plan)):
            instances = tuple(
                RecordedInstance(i.id, i.label, i.prompt_index, i.score, i.box, i.area, i.embedding)
                for i in prediction.instances
            )
            cues = stage.observe(prediction, frame.rgb, frame.depth_mm, frame.k)
            truth = visible_target_ids(frame.objects, frame.target_ids)
            records.append(FrameRecord(frame.instance, truth, plan.prompts, prediction.label_image, instances, cues))
    return records


def per_frame_outputs(frames: Sequence[FrameRecord], score_threshold: float) -> list[Output]:
    """What the node publishes without tracking: the instances >= score_threshold (above_threshold) with
    their per-frame ids."""
    return [[(i.id, i.mask) for i in above_threshold(f.prediction(), score_threshold).instances] for f in frames]


def tracked_outputs(frames: Sequence[FrameRecord], params: TrackerParams) -> list[Output]:
    """The tracks a fresh tracking stage publishes, fed each frame's instances."""
    return published_outputs(tracking_results(frames, params))


def published_outputs(tracked: Sequence[TrackedFrame]) -> list[Output]:
    """The outputs (track id, published mask per published track) of tracking_results."""
    return [[(t.track_ids[i.id], i.mask) for i in t.prediction.instances] for t in tracked]


def tracking_results(frames: Sequence[FrameRecord], params: TrackerParams) -> list[TrackedFrame]:
    """Per frame, what a fresh tracking stage (the node's, TrackingStage.follow) makes of the recorded
    prediction and cues."""
    stage = TrackingStage()
    tracked = []
    for frame in frames:
        cues = frame.cues or FrameCues(None, None, None)
        tracked.append(stage.follow(frame.prediction(), cues, frame.prompts, params))
    return tracked


FLICKER_CAUSES = (
    "found, mask below the match IoU",
    "not found, placed mask below the match IoU",
    "not found, not published",
    "track ended",
)


def flicker_causes(frames: Sequence[FrameRecord], tracked: Sequence[TrackedFrame]) -> dict[str, int]:
    """Why the tracked output flickers: for each flicker frame of a target (track_metrics.Score: not covered
    at IoU >= MATCH_IOU between frames where it is), what became of the track that covered it last
    (FLICKER_CAUSES: published with this frame's instance, whose mask does not match; published with a mask
    placed by prediction or the image check, which does not match; alive but not published; ended).
    tracked: tracking_results of the frames."""
    counts = dict.fromkeys(FLICKER_CAUSES, 0)
    for truth_id in sorted({i for frame in frames for i in frame.truth_ids}):
        visible = []  # per frame the target is in the truth: (covering track id or None, the frame's tracking)
        for frame, frame_tracked in zip(frames, tracked):
            if truth_id not in frame.truth_ids:
                continue
            truth = frame.instance_image == truth_id
            covering = next(
                (
                    frame_tracked.track_ids[i.id]
                    for i in frame_tracked.prediction.instances
                    if mask_iou(truth[None], i.mask[None])[0, 0] >= MATCH_IOU
                ),
                None,
            )
            visible.append((covering, frame_tracked))
        covered = [index for index, (track_id, _) in enumerate(visible) if track_id is not None]
        last = None
        for track_id, frame_tracked in visible[covered[0] : covered[-1] + 1] if len(covered) >= 2 else []:
            if track_id is not None:
                last = track_id
                continue
            if last in frame_tracked.track_ids.values():
                found = next(t for t in frame_tracked.result.tracks if t.track_id == last).detection is not None
                counts[FLICKER_CAUSES[0] if found else FLICKER_CAUSES[1]] += 1
            else:
                counts[FLICKER_CAUSES[2] if last in frame_tracked.live_ids else FLICKER_CAUSES[3]] += 1
    return counts


def grid_settings() -> Iterator[dict]:
    """Every combination of GRID, as TrackerParams keyword dicts."""
    for values in itertools.product(*GRID.values()):
        yield dict(zip(GRID, values))


def grid_scores(sequences: list[list[FrameRecord]], settings: list[dict], jobs: int = 1) -> list[dict]:
    """Per setting (TrackerParams keywords) {"setting", "metrics"}: the tracked outputs' Score summary over
    the sequences; `jobs` processes share the settings (forked: they inherit the records, none is copied)."""
    _grid_records[:] = sequences
    try:
        if jobs > 1:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(_grid_row, settings))
        return [_grid_row(setting) for setting in settings]
    finally:
        _grid_records.clear()


# The sequences grid_scores scores (module state, so that forked workers read the parent's records).
_grid_records: list[list[FrameRecord]] = []


def _grid_row(setting: dict) -> dict:
    score = Score()
    for frames in _grid_records:
        score.add(frames, tracked_outputs(frames, TrackerParams(**setting)))
    return {"setting": setting, "metrics": score.summary()}


def choose_setting(rows: Sequence[dict], baseline: dict) -> dict:
    """The validation row to ship: among settings that at least halve the baseline's flicker rate, the
    highest IDF1 (ties: the higher MOTA); without any, the highest IDF1."""
    halving = [r for r in rows if r["metrics"]["flicker_rate"] <= baseline["flicker_rate"] / 2]
    return max(halving or rows, key=lambda r: (r["metrics"]["idf1"], r["metrics"]["mota"]))


class SequenceRecorder:
    """The records (record_sequence) of the tracking sequences of a split, from --cache where present, else
    recorded by `jobs` processes (each with its own Predictor, one torch thread) and stored there."""

    def __init__(self, model: Path, cfg: TrackingSequenceConfig, jobs: int = 1, cache: Path | None = None):
        self.model, self.cfg, self.jobs = model, cfg, jobs
        self.cache = None if cache is None else cache / _cache_key(model, cfg)

    def records(self, split: range, count: int) -> list[list[FrameRecord]]:
        """Per sequence (the first `count` seeds of the split, in order) its frame records."""
        seeds = list(splits.seeds(split, count))
        found = {seed: self._cached(seed) for seed in seeds}
        missing = [seed for seed in seeds if found[seed] is None]
        if missing:
            with contextlib.ExitStack() as stack:
                if self.jobs > 1:
                    pool = stack.enter_context(
                        ProcessPoolExecutor(self.jobs, initializer=_start_worker, initargs=(self.model, self.cfg))
                    )
                    recorded = pool.map(_record_seed, missing)
                else:
                    _start_worker(self.model, self.cfg)
                    recorded = map(_record_seed, missing)
                for seed, records in zip(missing, recorded):  # stored as they come: a killed run keeps them
                    found[seed] = records
                    self._store(seed, records)
        return [found[seed] for seed in seeds]

    def _cached(self, seed: int) -> list[FrameRecord] | None:
        path = None if self.cache is None else self.cache / f"{seed}.pkl"
        if path is None or not path.exists():
            return None
        return pickle.loads(path.read_bytes())

    def _store(self, seed: int, records: list[FrameRecord]) -> None:
        if self.cache is not None:
            self.cache.mkdir(parents=True, exist_ok=True)
            partial = self.cache / f"{seed}.pkl.partial"
            partial.write_bytes(pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL))
            partial.rename(self.cache / f"{seed}.pkl")  # a killed run leaves no truncated record


def _cache_key(model: Path, cfg: TrackingSequenceConfig) -> str:
    """A folder name for what the records depend on: the model file's bytes, the sequences, the floor, and
    what a record holds (RECORD_FORMAT)."""
    digest = hashlib.sha256(model.read_bytes())
    digest.update(repr((cfg, DETECTION_FLOOR, RECORD_FORMAT)).encode())
    return digest.hexdigest()[:16]


# One recording process's state (SequenceRecorder with jobs > 1 starts each worker with it).
_worker: dict = {}


def _start_worker(model: Path, cfg: TrackingSequenceConfig) -> None:
    torch.set_num_threads(1)
    predictor, _ = Predictor.from_checkpoint(model, device="cpu", score_threshold=DETECTION_FLOOR)
    _worker.update(predictor=predictor, cfg=cfg, world=tracking_world(cfg))


def _record_seed(seed: int) -> list[FrameRecord]:
    world, cfg = _worker["world"], _worker["cfg"]
    frames = list(sequence_frames(world, sequence_script(world, seed, cfg), cfg))
    return record_sequence(_worker["predictor"], frames)


def evaluate_tracking(
    model: Path,
    num_sequences: int,
    num_validation: int,
    num_frames: int,
    progress: bool = True,
    jobs: int = 1,
    cache: Path | None = None,
) -> dict:
    """The JSON-able result (module docstring): setup, validation grid, chosen setting, evaluation."""
    started = time.time()
    cfg = TrackingSequenceConfig(num_frames=num_frames)
    # The checkpoint's own score threshold: what the node publishes without tracking.
    threshold = read_checkpoint(model)[1].inference.score_threshold
    recorder = SequenceRecorder(model, cfg, jobs, cache)

    validation = recorder.records(splits.VALIDATION, num_validation)
    _log(progress, f"validation: {num_validation} sequences recorded ({time.time() - started:.0f} s)")
    baseline = Score()
    for frames in validation:
        baseline.add(frames, per_frame_outputs(frames, threshold))
    rows = grid_scores(validation, list(grid_settings()), jobs)
    validation_baseline = baseline.summary()
    chosen = choose_setting(rows, validation_baseline)
    _log(progress, f"validation grid: {len(rows)} settings ({time.time() - started:.0f} s); chosen {chosen['setting']}")

    params = TrackerParams(**chosen["setting"])
    per_frame, tracked = Score(), Score()
    causes = dict.fromkeys(FLICKER_CAUSES, 0)
    for records in recorder.records(splits.EVAL, num_sequences):
        per_frame.add(records, per_frame_outputs(records, threshold))
        results = tracking_results(records, params)  # one tracker run for the metrics and the causes
        tracked.add(records, published_outputs(results))
        for cause, count in flicker_causes(records, results).items():
            causes[cause] += count
    _log(progress, f"evaluation: {num_sequences} sequences ({time.time() - started:.0f} s)")
    evaluation = {
        "per_frame": per_frame.summary(),
        "tracked": tracked.summary(),
        "tracked_flicker_causes": causes,
        "paired_bootstrap": paired_bootstrap(per_frame, tracked),
    }
    return {
        "setup": {
            "model": str(model),
            "sequences": num_sequences,
            "validation_sequences": num_validation,
            "frames": num_frames,
            "fps": cfg.fps,
            "eval_seeds": [splits.EVAL[0], splits.EVAL[num_sequences - 1]],
            "validation_seeds": [splits.VALIDATION[0], splits.VALIDATION[num_validation - 1]],
            "per_frame_score_threshold": threshold,
            "detection_floor": DETECTION_FLOOR,
            "min_visible_area": MIN_VISIBLE_AREA,
            "match_iou": MATCH_IOU,
            "grid": {k: list(v) for k, v in GRID.items()},
            "seconds": round(time.time() - started, 1),
        },
        "validation": {"per_frame": validation_baseline, "grid": rows, "chosen": chosen},
        "tracker_params": dataclasses.asdict(params),
        "evaluation": evaluation,
        "goals": goals(evaluation),
    }


def paired_bootstrap(per_frame: Score, tracked: Score, resamples: int = 2000, seed: int = 0) -> dict:
    """How sure the comparison is: the sequences drawn with replacement (`resamples` times, the same draws for
    both outputs, which saw the same sequences), each draw's pooled metrics recomputed; the 95 % intervals of
    the IDF1 difference tracked - per-frame and of the flicker-rate ratio tracked / per-frame (the goals'
    terms)."""
    counts = per_frame.sequence_counts(), tracked.sequence_counts()
    draws = unit_draws(len(per_frame.accumulators), resamples, seed)
    full = np.ones((1, draws.shape[1]))
    metrics = ("idf1", "flicker_rate")
    drawn = {metric: [pooled(draws, c[metric]) for c in counts] for metric in metrics}  # per output [resamples]
    observed = {metric: [float(pooled(full, c[metric])[0]) for c in counts] for metric in metrics}
    flickers = observed["flicker_rate"][0] > 0
    flicker_draws = _ratio(drawn["flicker_rate"][1], drawn["flicker_rate"][0])
    return {
        "sequences": draws.shape[1],
        "resamples": resamples,
        "idf1_difference": observed["idf1"][1] - observed["idf1"][0],
        "idf1_difference_ci95": interval(drawn["idf1"][1] - drawn["idf1"][0]),
        # Undefined (None) when the per-frame output does not flicker at all.
        "flicker_rate_ratio": observed["flicker_rate"][1] / observed["flicker_rate"][0] if flickers else None,
        "flicker_rate_ratio_ci95": interval(flicker_draws) if flickers else None,
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator per draw, nan where the denominator is 0 (a draw without per-frame flicker)."""
    return np.divide(numerator, denominator, out=np.full_like(numerator, np.nan), where=denominator > 0)


def goals(evaluation: dict) -> dict:
    """Issue 16's goals on the evaluation figures."""
    before, after = evaluation["per_frame"], evaluation["tracked"]
    return {
        "idf1_higher_with_tracking": after["idf1"] > before["idf1"],
        "flicker_rate_at_least_halved": after["flicker_rate"] <= before["flicker_rate"] / 2,
    }


def format_summary(result: dict) -> str:
    """The evaluation as a markdown table, with the chosen parameters and the goals."""
    setup, evaluation = result["setup"], result["evaluation"]
    header = ["output", "IDF1", "ID switches", "MOTA", "false positives", "misses", "flicker rate", "dropouts"]
    rows = [
        [
            name,
            m["idf1"],
            m["num_switches"],
            m["mota"],
            m["num_false_positives"],
            m["num_misses"],
            m["flicker_rate"],
            m["dropouts"],
        ]
        for name, m in (("per-frame (today)", evaluation["per_frame"]), ("tracked", evaluation["tracked"]))
    ]
    truth = evaluation["per_frame"]
    lines = [
        f"{setup['sequences']} evaluation sequences x {setup['frames']} frames at {setup['fps']:g} fps, model "
        f"{setup['model']}: {truth['num_objects']} target boxes, {truth['visible_target_frames']} visible target "
        "frames",
        *markdown_table(header, rows),
        "tracker (chosen on "
        + f"{setup['validation_sequences']} validation sequences): "
        + ", ".join(f"{k}={v}" for k, v in result["validation"]["chosen"]["setting"].items()),
    ]
    boot = evaluation["paired_bootstrap"]
    (low, high), ratio = boot["idf1_difference_ci95"], boot["flicker_rate_ratio"]
    flicker = "undefined (no per-frame flicker)"
    if ratio is not None:
        ratio_low, ratio_high = boot["flicker_rate_ratio_ci95"]
        flicker = f"{ratio:.2f} (95 % CI {ratio_low:.2f} to {ratio_high:.2f})"
    lines.append(
        f"tracked - per-frame IDF1 {boot['idf1_difference']:+.3f} (95 % CI {low:+.3f} to {high:+.3f}); tracked / "
        f"per-frame flicker rate {flicker}; paired bootstrap over the {boot['sequences']} sequences, "
        f"{boot['resamples']} draws"
    )
    causes = evaluation["tracked_flicker_causes"]
    lines.append("tracked flicker frames by cause: " + ", ".join(f"{cause}: {n}" for cause, n in causes.items()))
    lines += [f"goal {name}: {'met' if met else 'NOT met'}" for name, met in result["goals"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmp_ros.eval.tracking", description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=60, help="evaluation sequences (first seeds of the split)")
    parser.add_argument("--validation-sequences", type=int, default=60, help="validation sequences for the grid")
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence")
    parser.add_argument("--model", type=Path, default=model_file("pmp_default.safetensors"))
    parser.add_argument("--jobs", type=int, default=1, help="processes recording sequences (one torch thread each)")
    parser.add_argument("--cache", type=Path, help="keep each sequence's model records here and reuse them")
    parser.add_argument("--out", type=Path, help="write the result (setup, grid, figures) here as JSON")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    result = evaluate_tracking(
        args.model, args.sequences, args.validation_sequences, args.frames, jobs=args.jobs, cache=args.cache
    )
    result["command"] = shlex.join(["python", "-m", "pmp_ros.eval.tracking", *(sys.argv[1:] if argv is None else argv)])
    print(format_summary(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def _log(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    # Run as the imported module, not as __main__: the records the worker processes return and the cache
    # keeps must pickle as pmp_ros.eval.tracking.FrameRecord to be read back by any process.
    from pmp_ros.eval.tracking import main as module_main

    sys.exit(module_main())
