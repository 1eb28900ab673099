"""Identity metrics of a segmentation output over frame sequences (issue 16): IDF1, ID switches, MOTA and the
target flicker rate, shared by the offline tracking evaluation (pmp_ros.eval.tracking) and pmp-eval-bag.

Truth: in each frame, the targets (objects the instruction refers to) with at least MIN_VISIBLE_AREA visible
pixels, their ids the same object's in every frame of a sequence. Output: per frame, (id, mask) per published
instance. Matching (motmetrics): 1 - mask IoU, pairs below IoU MATCH_IOU never match. The target flicker rate:
over each target's visible frames in order, the frames where no output covers it (IoU >= MATCH_IOU) while
outputs covered it at an earlier and a later visible frame (it disappeared from the output and came back),
divided by all visible target frames; dropouts counts those gaps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import motmetrics
import numpy as np

from pmp_ros.tracking import mask_iou

MIN_VISIBLE_AREA = 50  # px: a target with fewer visible pixels is not in the truth of that frame
MATCH_IOU = 0.5
METRICS = ("idf1", "num_switches", "mota", "num_false_positives", "num_misses", "num_objects")

Output = list[tuple[int, np.ndarray]]  # one frame's (id, bool [H,W] mask) per output instance


@dataclass(frozen=True, eq=False)
class FrameTargets:
    """One frame's truth: the instance image (uint16 [H,W], value = object id) and the ids of the targets
    visible enough (visible_target_ids)."""

    instance_image: np.ndarray
    truth_ids: tuple[int, ...]


def visible_target_ids(objects: Iterable, target_ids: Iterable[int]) -> tuple[int, ...]:
    """The ids of the objects (anything with .id and .area, visible pixels) that are targets and have at
    least MIN_VISIBLE_AREA visible pixels, in the objects' order."""
    targets = set(target_ids)
    return tuple(o.id for o in objects if o.id in targets and o.area >= MIN_VISIBLE_AREA)


@dataclass
class Score:
    """Matching and flicker counts over sequences (one motmetrics accumulator each)."""

    accumulators: list = dataclasses.field(default_factory=list)
    visible_frames: int = 0
    flicker_frames: int = 0
    dropouts: int = 0
    sequence_flicker: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (flicker, visible) each

    def add(self, frames: Sequence[FrameTargets], outputs: Sequence[Output]) -> None:
        """One sequence: its frames' truths and the outputs for them, in order."""
        accumulator = motmetrics.MOTAccumulator(auto_id=True)
        covered: dict[int, list[bool]] = {}
        for frame, output in zip(frames, outputs):
            iou = _truth_iou(frame, output)
            accumulator.update(
                list(frame.truth_ids), [i for i, _ in output], np.where(iou >= MATCH_IOU, 1.0 - iou, np.nan)
            )
            for row, truth_id in enumerate(frame.truth_ids):
                covered.setdefault(truth_id, []).append(bool(output) and bool(iou[row].max() >= MATCH_IOU))
        self.accumulators.append(accumulator)
        flicker = visible = 0
        for flags in covered.values():
            visible += len(flags)
            hits = np.flatnonzero(flags)
            if len(hits) >= 2:
                inside = ~np.asarray(flags[hits[0] : hits[-1] + 1])
                flicker += int(inside.sum())
                self.dropouts += int(np.count_nonzero(np.diff(inside.astype(int)) == 1))
        self.visible_frames += visible
        self.flicker_frames += flicker
        self.sequence_flicker.append((flicker, visible))

    def summary(self) -> dict:
        """IDF1, ID switches, MOTA, FP, misses, truth count over all sequences, and the flicker figures."""
        overall = motmetrics.metrics.create().compute_many(
            self.accumulators,
            metrics=list(METRICS),
            names=[str(i) for i in range(len(self.accumulators))],
            generate_overall=True,
        )
        row = overall.loc["OVERALL"]
        return {name: float(row[name]) if name in ("idf1", "mota") else int(row[name]) for name in METRICS} | {
            "visible_target_frames": self.visible_frames,
            "flicker_frames": self.flicker_frames,
            "dropouts": self.dropouts,
            "flicker_rate": self.flicker_frames / max(self.visible_frames, 1),
        }

    def sequence_counts(self) -> dict[str, np.ndarray]:
        """Per sequence the numerator and denominator (float [S, 2]) whose sums over sequences give the pooled
        metric: "idf1": (2 IDTP, 2 IDTP + IDFP + IDFN), "flicker_rate": (flicker frames, visible target
        frames). For a bootstrap over sequences (pmp_ros.eval.metrics.bootstrap)."""
        per_sequence = motmetrics.metrics.create().compute_many(
            self.accumulators, metrics=["idtp", "idfp", "idfn"], names=[str(i) for i in range(len(self.accumulators))]
        )
        idtp, idfp, idfn = (per_sequence[name].to_numpy(np.float64) for name in ("idtp", "idfp", "idfn"))
        return {
            "idf1": np.stack([2 * idtp, 2 * idtp + idfp + idfn], axis=1),
            "flicker_rate": np.asarray(self.sequence_flicker, np.float64).reshape(-1, 2),
        }


def _truth_iou(frame: FrameTargets, output: Output) -> np.ndarray:
    """float [truths, outputs] mask IoU of a frame's truth objects and output masks."""
    if not frame.truth_ids or not output:
        return np.zeros((len(frame.truth_ids), len(output)))
    truth = np.stack([frame.instance_image == i for i in frame.truth_ids])
    return mask_iou(truth, np.stack([mask for _, mask in output]))
