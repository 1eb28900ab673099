"""pmp-eval-bag's tracking metrics: IDF1, ID switches, MOTA and the target flicker rate
(pmp_ros.eval.metrics.track_metrics, as python -m pmp_ros.eval.tracking scores them offline) of the node's published
results, against a ground truth whose ids name the same object from frame to frame (pmp-write-bag records
them so: docs/bags.md).

A replay's output ids are its instances' track ids when the node published any (tracking on), else their
per-frame instance ids (tracking:=false: 1..n by score in each frame), so a replay with tracking:=false is the
"without tracking" figure of the same frames.
"""

from __future__ import annotations

import numpy as np

from pmp_ros.bags.player import FrameLog, Playback
from pmp_ros.eval.metrics.track_metrics import FrameTargets, Output, Score, visible_target_ids
from pmp_ros.ros.image_conversion import image_to_array
from pmp_ros_msgs.msg import SegmentationResult

WITH_TRACKING, WITHOUT_TRACKING = "with_tracking", "without_tracking"


def truth_sequences(playback: Playback) -> list[list[FrameLog]]:
    """The frames with ground truth and a result, in publication order, split where the truth's ids may stop
    naming the same objects: where the truth's instruction changes (a tracking bag's sequences have one each,
    and the node ends the tracks of the phrases a new one drops) and where an id of the previous frame has
    another label (a cut to another scene)."""
    sequences: list[list[FrameLog]] = []
    previous_labels: dict[int, str] = {}
    previous_instruction = None
    for frame in playback.frames:
        truth = playback.truths.get(frame.key)
        if frame.result is None or truth is None:
            continue
        labels = {int(o.id): o.label for o in truth.objects}
        cut = truth.instruction != previous_instruction or any(
            previous_labels.get(i, label) != label for i, label in labels.items()
        )
        if cut or not sequences:
            sequences.append([])
        sequences[-1].append(frame)
        previous_labels, previous_instruction = labels, truth.instruction
    return sequences


def missing_tracking_truth(playback: Playback) -> str | None:
    """Why the replay's tracking cannot be measured (no ground truth, no answered frame with it, or no target
    visible in two consecutive frames of a sequence: no identity to keep or lose), or None."""
    if not playback.truths:
        return "no ground truth in the bag"
    sequences = truth_sequences(playback)
    if not sequences:
        return "no frame with ground truth and a result"
    for sequence in sequences:
        for before, after in zip(sequence, sequence[1:]):
            if set(_targets(playback, before).truth_ids) & set(_targets(playback, after).truth_ids):
                return None
    return "the ground truth's ids do not continue across frames (no target in two consecutive answered frames)"


def published_tracks(playback: Playback) -> bool:
    """Whether the node published track ids (tracking on) in this replay."""
    return any(i.track_id > 0 for f in playback.frames if f.result is not None for i in f.result.instances)


def score_replay(playback: Playback) -> dict:
    """track_metrics.Score's summary of a replay's outputs over its answered frames with ground truth, one
    motmetrics sequence per truth_sequences sequence."""
    tracked, score = published_tracks(playback), Score()
    for sequence in truth_sequences(playback):
        score.add([_targets(playback, f) for f in sequence], [_output(f.result, tracked) for f in sequence])
    return score.summary() | {"sequences": len(score.accumulators)}


def _targets(playback: Playback, frame: FrameLog) -> FrameTargets:
    truth = playback.truths[frame.key]
    return FrameTargets(
        np.asarray(image_to_array(truth.instance_image)), visible_target_ids(truth.objects, truth.target_ids)
    )


def _output(result: SegmentationResult, tracked: bool) -> Output:
    """A result's (id, mask) per instance: its track id when tracked, else its per-frame instance id."""
    labels = image_to_array(result.label_image)
    return [(i.track_id if tracked else i.id, labels == i.id) for i in result.instances]
