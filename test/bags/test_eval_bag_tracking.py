"""pmp-eval-bag's tracking metrics (pmp_ros.bags.tracking_metrics): IDF1, ID switches, MOTA and the target flicker
rate of the node's track ids on a tracking bag written by pmp-write-bag's writer, beside the same figures of a
second replay with tracking:=false (--tracking-baseline), through real topics with the shipped model; a bag
whose ids cannot measure tracking says why."""

import dataclasses
import json

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from pmp_ros.bags.evaluate import EvalOptions, evaluate_bags
from pmp_ros.bags.messages import ground_truth
from pmp_ros.bags.player import FrameLog, Playback
from pmp_ros.bags.tracking_metrics import missing_tracking_truth, truth_sequences
from pmp_ros.bags.writer import write_bag
from pmp_ros.data.sequences import TrackingSequenceConfig, sequence_frames, sequence_script, tracking_world
from pmp_ros_msgs.msg import SegmentationResult

# A test-split sequence where an orange and a red cross swap their per-frame instance ids as their scores do
# (test/ros/test_node_tracking.py); its first 10 frames have six swaps offline, and a tracker none.
TWO_CROSSES = 950000008
FRAMES = 10


def _two_crosses(count: int):
    cfg = TrackingSequenceConfig()
    world = tracking_world(cfg)
    return list(sequence_frames(world, sequence_script(world, TWO_CROSSES, cfg), cfg))[:count]


def test_the_report_has_idf1_switches_mota_and_flicker_with_and_without_tracking(tmp_path):
    frames = _two_crosses(FRAMES)
    write_bag(tmp_path / "crosses", frames)
    # The same frames without ground truth: the node answers (the instruction topic is there), no ids to score.
    write_bag(tmp_path / "no_truth", [dataclasses.replace(f, instance=None) for f in frames[:3]])
    options = EvalOptions(
        lockstep=True, device="cpu", node_params={"cpu_threads": "1"}, progress=False, tracking_baseline=True
    )
    reports = evaluate_bags([tmp_path / "crosses", tmp_path / "no_truth"], options, tmp_path / "out")
    crosses, no_truth = reports

    assert crosses["problems"] == [] and crosses["results"] == FRAMES
    tracked, untracked = crosses["tracking"]["with_tracking"], crosses["tracking"]["without_tracking"]
    assert "a second replay with tracking:=false" in crosses["tracking_note"]
    # Both replays are scored against the same truth: two crosses visible in every frame, one sequence.
    for figures in (tracked, untracked):
        assert figures["num_objects"] == figures["visible_target_frames"] == 2 * FRAMES and figures["sequences"] == 1
    # Per-frame instance ids follow the scores, so they swap between the crosses; track ids do not.
    assert untracked["num_switches"] > 0 and tracked["num_switches"] < untracked["num_switches"], (tracked, untracked)
    assert tracked["idf1"] > untracked["idf1"], (tracked, untracked)
    assert (tmp_path / "out" / "crosses" / "node_untracked.log").stat().st_size > 0
    markdown = (tmp_path / "out" / "crosses" / "report.md").read_text()
    assert "| figure | with tracking | without tracking |" in markdown
    assert f"| IDF1 | {tracked['idf1']:.3f} | {untracked['idf1']:.3f} |" in markdown
    assert json.loads((tmp_path / "out" / "crosses" / "report.json").read_text())["tracking"] == crosses["tracking"]

    assert no_truth["results"] == 3 and no_truth["tracking"] is None
    assert no_truth["tracking_note"] == "not available: no ground truth in the bag"
    assert (
        "Tracking metrics not available: no ground truth in the bag."
        in (tmp_path / "out" / "no_truth" / "report.md").read_text()
    )


def _playback(frames) -> Playback:
    """A playback that answered every frame (empty results: only the truth is looked at)."""
    playback = Playback()
    for index, frame in enumerate(frames):
        key = (index, 0)
        playback.frames.append(FrameLog(index, key, frame.instruction, 0.0, result=SegmentationResult()))
        playback.truths[key] = ground_truth(Header(stamp=Time(sec=index)), frame)
    return playback


def test_sequences_split_where_ids_may_name_other_objects_and_ids_that_never_continue_are_not_scored():
    frames = _two_crosses(4)
    assert [len(s) for s in truth_sequences(_playback(frames))] == [4]
    assert missing_tracking_truth(_playback(frames)) is None

    # A new instruction starts a sequence, and so does an id whose label changed (a cut to another scene).
    relabelled = dataclasses.replace(
        frames[3], objects=tuple(dataclasses.replace(o, label="green ring") for o in frames[3].objects)
    )
    renamed = dataclasses.replace(frames[1], instruction="pick up the red cross")
    assert [len(s) for s in truth_sequences(_playback([frames[0], renamed, frames[2], relabelled]))] == [1, 1, 1, 1]
    # Every frame its own sequence: no target is seen twice, so no identity can be kept or lost.
    assert missing_tracking_truth(_playback([frames[0], renamed, frames[2], relabelled])) == (
        "the ground truth's ids do not continue across frames (no target in two consecutive answered frames)"
    )
