"""The tracker on synthetic moving blobs, the tracking sequences of the procedural world, and the tracking
metrics on two short sequences through the shipped model."""

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from pmp_ros.bags.messages import BagTopics, deserialize, truth_from_message
from pmp_ros.bags.storage import inspect_bag
from pmp_ros.bags.writer import main as write_bag_main
from pmp_ros.data import splits, vocabulary
from pmp_ros.data.sequences import TrackingSequenceConfig, sequence_frames, sequence_script, tracking_world
from pmp_ros.data.streams import camera_rotation
from pmp_ros.eval.tracking import (
    DETECTION_FLOOR,
    FLICKER_CAUSES,
    FrameRecord,
    RecordedInstance,
    Score,
    SequenceRecorder,
    flicker_causes,
    paired_bootstrap,
    per_frame_outputs,
    record_sequence,
    tracked_outputs,
    tracking_results,
)
from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.model.inference import Predictor
from pmp_ros.objects3d import mask_box
from pmp_ros.perception.frame import FrameInput, FramePipeline, FrameSettings
from pmp_ros.perception.tracking_stage import TrackingStage
from pmp_ros.tracking import Tracker, TrackerParams, image_shift, mask_iou

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pmp_default.safetensors"
SIZE = (60, 80)  # H, W of the synthetic frames
RADIUS = 6


@dataclass(frozen=True)
class Blob:
    label: str
    score: float
    mask: np.ndarray


def disc(x: float, y: float, radius: int = RADIUS) -> np.ndarray:
    rows, cols = np.mgrid[: SIZE[0], : SIZE[1]]
    return (cols - x) ** 2 + (rows - y) ** 2 <= radius**2


def blob(x: float, y: float, score: float = 0.5, label: str = "red star") -> Blob:
    return Blob(label, score, disc(x, y))


def ids_by_label(result) -> dict[str, int]:
    return {t.label: t.track_id for t in result.tracks}


def test_moving_blobs_keep_their_ids_through_a_miss():
    tracker = Tracker(TrackerParams(min_hits=1, max_misses=3, motion_weight=0.5))
    first = None
    for frame in range(8):
        blobs = [blob(10 + 3 * frame, 15, label="a"), blob(70 - 3 * frame, 45, label="b")]
        if frame == 4:
            blobs = blobs[:1]  # b is not found in frame 4
        result = tracker.update(blobs)
        first = first or ids_by_label(result)
        assert ids_by_label(result) == first
    assert sorted(first.values()) == [1, 2]


def test_a_missed_track_is_published_with_its_predicted_mask():
    tracker = Tracker(TrackerParams(min_hits=1, miss_decay=1.0, motion_weight=0.5))
    for frame in range(4):
        tracker.update([blob(10 + 4 * frame, 30)])
    (missed,) = tracker.update([]).tracks
    assert missed.detection is None and missed.misses == 1
    ys, xs = np.nonzero(missed.mask)
    assert xs.mean() == pytest.approx(26, abs=1.0) and ys.mean() == pytest.approx(30, abs=0.5)


def test_a_missed_track_follows_the_camera_shift():
    """A still object while the camera starts to pan: its velocity is 0, the image shift moves it."""
    tracker = Tracker(TrackerParams(min_hits=1, miss_decay=1.0))
    for _ in range(3):
        tracker.update([blob(30, 30)], camera_shift=(0.0, 0.0))
    (missed,) = tracker.update([], camera_shift=(5.0, -2.0)).tracks
    ys, xs = np.nonzero(missed.mask)
    assert (xs.mean(), ys.mean()) == pytest.approx((35, 28), abs=0.5)
    # Found again where the camera put it: the same track, still without a velocity of its own.
    assert tracker.update([blob(40, 26)], camera_shift=(5.0, -2.0)).track_ids == (missed.track_id,)
    (next_frame,) = tracker.update([], camera_shift=(0.0, 0.0)).tracks
    assert np.nonzero(next_frame.mask)[1].mean() == pytest.approx(40, abs=0.5)


def test_a_track_predicted_out_of_the_image_is_not_published():
    tracker = Tracker(TrackerParams(min_hits=1, miss_decay=1.0))
    tracker.update([blob(70, 30)])
    assert tracker.update([], camera_shift=(30.0, 0.0)).tracks == ()
    assert tracker.num_tracks == 1  # kept: the camera may come back


def scene(*discs: tuple[float, float]) -> np.ndarray:
    """uint8 [H,W,3]: a grey textured background with an orange disc at each (x, y)."""
    rows, cols = np.mgrid[: SIZE[0], : SIZE[1]]
    image = np.stack([(rows * 7 + cols * 3) % 40 + 60] * 3, axis=2).astype(np.uint8)
    for x, y in discs:
        image[disc(x, y)] = (230, 120, 20)
    return image


CHECKED = TrackerParams(min_hits=1, image_check_tolerance=20.0, image_search=0.1, publish_misses=0)


def test_a_missed_track_is_published_where_the_image_still_shows_it():
    """The model misses the disc, the image still shows it (moved 3 px): published there, its id kept."""
    tracker = Tracker(CHECKED)
    for _ in range(2):
        (track_id,) = tracker.update([blob(30, 30)], image=scene((30, 30))).track_ids
    (missed,) = tracker.update([], image=scene((33, 31))).tracks
    assert missed.track_id == track_id and missed.detection is None
    assert mask_iou(missed.mask[None], disc(33, 31)[None])[0, 0] == 1.0
    # Its position was corrected to the match: the next miss starts from there.
    (again,) = tracker.update([], image=scene((35, 31))).tracks
    assert mask_iou(again.mask[None], disc(35, 31)[None])[0, 0] == 1.0


def test_a_missed_track_whose_place_shows_something_else_is_not_published_but_lives():
    tracker = Tracker(CHECKED)
    for _ in range(2):
        (track_id,) = tracker.update([blob(30, 30)], image=scene((30, 30))).track_ids
    assert tracker.update([], image=scene()).tracks == ()  # occluded or gone: no mask on the background
    assert tracker.num_tracks == 1
    assert tracker.update([blob(30, 30)], image=scene((30, 30))).track_ids == (track_id,)
    # Without an image the check cannot run: publish_misses (0 here) decides.
    assert tracker.update([]).tracks == ()


def test_image_shift_recovers_a_translation():
    texture = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    moved = np.roll(texture, (-3, 5), axis=(0, 1))  # the scene moves 5 px right, 3 px up
    assert image_shift(texture, moved) == pytest.approx((5.0, -3.0), abs=0.05)


def test_crossing_blobs_do_not_swap_with_appearance():
    """Two blobs of one class cross. Without a motion model (motion_weight 0) their masks are ambiguous once
    they overlap; their embeddings are not."""
    tracker = Tracker(TrackerParams(min_hits=1, motion_weight=0.0))
    embeddings = {"left": np.array([1.0, 0.0, 0.2]), "right": np.array([0.1, 1.0, 0.0])}
    owner = {}
    for frame in range(11):
        left, right = 20 + 4 * frame, 60 - 4 * frame  # they meet at frame 5
        # The detector lists them in a random order each frame.
        order = ["left", "right"] if frame % 3 else ["right", "left"]
        centres = {"left": left, "right": right}
        blobs = [blob(centres[name], 30) for name in order]
        result = tracker.update(blobs, [embeddings[name] for name in order])
        for name, track_id in zip(order, result.track_ids):
            assert owner.setdefault(name, track_id) == track_id, f"frame {frame}: {name} changed id"
    assert owner["left"] != owner["right"]


def test_centroids_reassociate_an_object_that_jumped():
    """After a jump with no mask overlap and no appearance, the 3D distance keeps the id."""
    tracker = Tracker(TrackerParams(min_hits=1, max_misses=3, distance_weight=1.0))
    centroids = [(0.0, 0.0, 0.5), (0.3, 0.0, 0.5)]
    first = tracker.update([blob(15, 30), blob(65, 30)], centroids=centroids).track_ids
    tracker.update([], centroids=[])
    # Both are found again 15 px to the right (no overlap with the old masks), each 1 cm from its centroid.
    moved = tracker.update([blob(30, 30), blob(80, 30)], centroids=[(0.01, 0.0, 0.5), (0.31, 0.0, 0.5)])
    assert moved.track_ids == first


def test_a_track_is_born_after_min_hits():
    tracker = Tracker(TrackerParams(min_hits=3))
    tracker.update([])  # from here on mid-stream (the first frame's tracks are confirmed at once: next test)
    published = [tracker.update([blob(30, 30)]) for _ in range(4)]
    assert [len(r.tracks) for r in published] == [0, 0, 1, 1]
    assert published[0].track_ids == (None,) and published[2].track_ids == (1,)
    # A tentative track that misses a frame is gone: the next instance starts a new one.
    tracker.update([blob(60, 30, label="blue ring")])
    tracker.update([])
    again = [tracker.update([blob(60, 30, label="blue ring")]) for _ in range(3)]
    assert [r.track_ids for r in again] == [(None,), (None,), (3,)]


def test_the_first_frame_and_a_new_instruction_publish_their_tracks_at_once():
    tracker = Tracker(TrackerParams(min_hits=3))
    assert tracker.update([blob(30, 30)]).track_ids == (1,)
    ring = blob(60, 30, label="blue ring")
    assert tracker.update([blob(30, 30), ring]).track_ids == (1, None)  # mid-stream: tentative
    tracker.retain_labels(["red star", "green cross"])  # a new instruction: the ring's tentative track 2 ends
    assert tracker.update([blob(30, 30), blob(60, 45, label="green cross")]).track_ids == (1, 3)
    assert tracker.update([blob(30, 30), blob(60, 45, label="green cross"), ring]).track_ids == (1, 3, None)


def test_a_track_dies_after_max_misses():
    params = TrackerParams(min_hits=1, max_misses=3, publish_misses=3, miss_decay=1.0)
    for gap, same in ((3, True), (4, False)):
        tracker = Tracker(params)
        (track_id,) = tracker.update([blob(30, 30)]).track_ids
        missed = [tracker.update([]).tracks for _ in range(gap)]
        assert [[t.track_id for t in tracks] for tracks in missed] == [[track_id]] * 3 + [[]] * (gap - 3)
        assert (tracker.update([blob(30, 30)]).track_ids == (track_id,)) is same
    assert tracker.num_tracks == 1


def test_the_smoothed_score_does_not_flicker_across_the_threshold():
    params = TrackerParams(min_hits=1, score_weight=0.5, publish_score=0.15)
    tracker = Tracker(params)
    scores = [0.3, 0.3, 0.1, 0.3, 0.12, 0.3]  # a per-frame threshold of 0.15 would drop frames 2 and 4
    smoothed = []
    for score in scores:
        (track,) = tracker.update([blob(30, 30, score)]).tracks
        smoothed.append(track.score)
    assert smoothed[:3] == pytest.approx([0.3, 0.3, 0.2])
    assert min(smoothed) >= 0.15
    # A weak instance never starts a track of its own.
    assert Tracker(params).update([blob(30, 30, 0.1)]).tracks == ()


def test_retain_labels_keeps_the_tracks_of_the_classes_still_named():
    tracker = Tracker(TrackerParams(min_hits=1))
    before = ids_by_label(tracker.update([blob(20, 30, label="red star"), blob(60, 30, label="blue ring")]))
    tracker.retain_labels({"red star", "green cross"})
    after = ids_by_label(tracker.update([blob(20, 30, label="red star"), blob(60, 30, label="blue ring")]))
    assert after["red star"] == before["red star"]
    assert after["blue ring"] not in before.values()


SEQUENCE = TrackingSequenceConfig(num_frames=12, vanish_prob=1.0, occluder_prob=1.0)


@pytest.fixture(scope="module")
def sequence():
    world = tracking_world(SEQUENCE)
    script = sequence_script(world, splits.TEST[0], SEQUENCE)
    return script, list(sequence_frames(world, script, SEQUENCE))


def test_sequences_are_deterministic(sequence):
    script, frames = sequence
    world = tracking_world(SEQUENCE)
    again = list(sequence_frames(world, sequence_script(world, splits.TEST[0], SEQUENCE), SEQUENCE))
    for a, b in zip(frames, again):
        for field in ("rgb", "depth_mm", "instance"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert a.objects == b.objects and a.target_ids == b.target_ids
    assert not np.array_equal(frames[0].rgb, frames[-1].rgb)  # things move


def test_sequence_object_ids_are_stable(sequence):
    script, frames = sequence
    labels = {}
    for index, frame in enumerate(frames):
        ids = {o.id for o in frame.objects}
        assert set(np.unique(frame.instance)) - {0} == ids
        for o in frame.objects:
            assert labels.setdefault(o.id, o.label) == o.label  # an id is one object throughout
            assert o.area == np.count_nonzero(frame.instance == o.id)
        assert set(frame.target_ids) == {o.id for o in frame.objects if o.label in script.prompts}
        if index in script.vanished_frames:
            assert script.vanished_id not in ids
    before = frames[script.vanished_frames.start - 1]
    assert script.vanished_id in {o.id for o in before.objects}
    assert script.occluder.id == max(s.id for s in script.plan.objects) + 1
    assert script.occluder.name not in script.prompts
    moved = [s.object_id for s in script.slides]
    assert script.occluder.id in moved and len(moved) >= 2


def test_image_shift_of_a_sequence_is_the_cameras_motion(sequence):
    _, frames = sequence
    k = frames[0].k
    for index in (1, 6):
        before, after = (
            k @ camera_rotation(t / SEQUENCE.fps, SEQUENCE.pan_deg, SEQUENCE.pan_period_s) @ np.linalg.inv(k)
            for t in (index - 1, index)
        )
        centre = np.array([SEQUENCE.width / 2, SEQUENCE.height / 2, 1.0])
        moved = after @ np.linalg.inv(before) @ centre
        assert image_shift(frames[index - 1].rgb, frames[index].rgb) == pytest.approx(
            moved[:2] / moved[2] - centre[:2], abs=1.0
        )


def test_first_frame_of_a_sequence_is_the_worlds_rendering_of_its_plan(sequence):
    script, frames = sequence
    world = tracking_world(SEQUENCE)
    scene = world.draw(replace(script.plan, objects=script.objects_at(0, SEQUENCE.fps)), compact_ids=False)
    np.testing.assert_array_equal(frames[0].instance, scene.instance)
    np.testing.assert_array_equal(frames[0].rgb, scene.rgb)
    assert world.draw(world.plan(5)).objects == world.render(5).objects


def test_pmp_write_bag_records_tracking_sequences(tmp_path):
    args = ["--source", "tracking", "--seconds", "0.8", "--scene-seconds", "0.4", "--width", "96", "--height", "72"]
    assert write_bag_main([str(tmp_path / "bag"), *args]) == 0
    contents, source = inspect_bag(tmp_path / "bag", BagTopics())
    assert contents.problems == [] and contents.counts["gt"] == 8
    truths = [truth_from_message(deserialize(m.data, m.msgtype)) for m in source() if m.role == "gt"]
    for scene in (truths[:4], truths[4:]):
        assert len({t.prompts for t in scene}) == 1  # one instruction per sequence
        labels = {}
        for truth in scene:
            for object_id, label in truth.class_names.items():
                assert labels.setdefault(object_id, label) == label


def test_flicker_counts_the_frames_a_covered_target_disappears():
    truth = np.zeros(SIZE, np.uint16)
    truth[disc(30, 30)] = 7
    record = FrameRecord(truth, (7,))
    covered, wrong = [(1, disc(30, 30))], [(1, disc(70, 10))]
    score = Score()
    score.add([record] * 6, [covered, [], covered, [], wrong, covered])
    summary = score.summary()
    assert summary["visible_target_frames"] == 6
    assert summary["flicker_frames"] == 3 and summary["dropouts"] == 2
    assert summary["num_misses"] == 3 and summary["num_false_positives"] == 1
    assert summary["flicker_rate"] == pytest.approx(0.5)


def test_flicker_causes_say_what_became_of_the_targets_track():
    """A still target whose instance is whole, then a third of it, then missing for three frames, then whole:
    each uncovered frame between the covered ones has the cause of its own kind."""
    truth = np.zeros(SIZE, np.uint16)
    truth[disc(30, 30)] = 7
    rows, cols = np.mgrid[: SIZE[0], : SIZE[1]]
    whole, third = disc(30, 30).astype(np.uint8), (disc(30, 30) & (cols < 28)).astype(np.uint8)

    def record(label_image):
        mask = label_image == 1
        found = (RecordedInstance(1, "red star", 0, 0.9, mask_box(mask), int(mask.sum()), None),) if mask.any() else ()
        return FrameRecord(truth, (7,), ("red star",), label_image.astype(np.uint16), found)

    none = np.zeros(SIZE, np.uint8)
    frames = [record(whole), record(third), record(none), record(none), record(none), record(whole)]
    params = TrackerParams(min_hits=1, publish_misses=1, max_misses=2, image_check_tolerance=0.0)
    causes = flicker_causes(frames, tracking_results(frames, params))
    assert causes == dict.fromkeys(FLICKER_CAUSES, 1)
    score = Score()
    score.add(frames, tracked_outputs(frames, params))
    assert score.summary()["flicker_frames"] == sum(causes.values())


def test_sequence_counts_pool_to_the_summary_and_the_bootstrap_brackets_the_difference():
    truth = np.zeros(SIZE, np.uint16)
    truth[disc(30, 30)] = 7
    record = FrameRecord(truth, (7,))
    covered, other = [(1, disc(30, 30))], [(2, disc(30, 30))]
    steady, flickering = Score(), Score()
    for gaps in range(1, 5):  # four sequences, the flickering output's with more and more gaps and id changes
        steady.add([record] * 8, [covered] * 8)
        flickering.add([record] * 8, [covered] + [[]] * gaps + [other] * (7 - gaps))
    for score in (steady, flickering):
        counts, summary = score.sequence_counts(), score.summary()
        assert counts["idf1"][:, 0].sum() / counts["idf1"][:, 1].sum() == pytest.approx(summary["idf1"])
        assert counts["flicker_rate"][:, 0].sum() / counts["flicker_rate"][:, 1].sum() == pytest.approx(
            summary["flicker_rate"]
        )
    same = paired_bootstrap(steady, steady, resamples=200)
    assert same["idf1_difference"] == 0 and same["idf1_difference_ci95"] == [0, 0]
    worse = paired_bootstrap(steady, flickering, resamples=200)
    low, high = worse["idf1_difference_ci95"]
    assert low <= worse["idf1_difference"] <= high < 0
    assert steady.summary()["flicker_rate"] == 0 and worse["flicker_rate_ratio"] is None
    better = paired_bootstrap(flickering, steady, resamples=200)
    assert better["flicker_rate_ratio"] == 0 and better["flicker_rate_ratio_ci95"] == [0, 0]


@pytest.mark.slow
def test_metrics_on_two_short_sequences_through_the_shipped_model():
    cfg = TrackingSequenceConfig(num_frames=4)
    world = tracking_world(cfg)
    predictor, model_cfg = Predictor.from_checkpoint(SHIPPED, device="cpu", score_threshold=DETECTION_FLOOR)
    per_frame, tracked = Score(), Score()
    for seed in splits.seeds(splits.TEST, 2):
        records = record_sequence(predictor, list(sequence_frames(world, sequence_script(world, seed, cfg), cfg)))
        assert len(records) == 4
        assert all(i.score >= DETECTION_FLOOR and i.mask.any() for r in records for i in r.prediction().instances)
        per_frame.add(records, per_frame_outputs(records, model_cfg.inference.score_threshold))
        tracked.add(records, tracked_outputs(records, TrackerParams()))
    for summary in (per_frame.summary(), tracked.summary()):
        assert summary["num_objects"] == summary["visible_target_frames"] > 0
        assert 0.0 <= summary["idf1"] <= 1.0 and summary["mota"] <= 1.0
        assert 0.0 <= summary["flicker_rate"] <= 1.0


@pytest.mark.slow
def test_the_evaluations_replay_of_its_records_is_the_frame_pipeline_on_the_stream():
    """The evaluation records each frame once (prediction, tracking cues) and replays the tracking stage for
    every setting: what the replay publishes is what the frame pipeline publishes frame by frame, as the node
    runs it, on the shipped model."""
    cfg = TrackingSequenceConfig(num_frames=8)
    world = tracking_world(cfg)
    predictor, model_cfg = Predictor.from_checkpoint(SHIPPED, device="cpu", score_threshold=DETECTION_FLOOR)
    params = TrackerParams(publish_score=model_cfg.inference.score_threshold)
    compared = 0
    for seed in splits.seeds(splits.TEST, 2):
        frames = list(sequence_frames(world, sequence_script(world, seed, cfg), cfg))
        replayed = tracking_results(record_sequence(predictor, frames), params)
        pipeline, stage = FramePipeline(predictor, vocabulary.all_classes()), TrackingStage()
        parsed = ParsedInstruction(frames[0].prompts, (True,) * len(frames[0].prompts))
        settings = FrameSettings(params.publish_score, tracker=params)
        for frame, expected in zip(frames, replayed):
            live = pipeline.process(FrameInput(frame.rgb, frame.depth_mm, frame.k), parsed, settings, tracking=stage)
            assert live.track_ids == expected.track_ids
            # The evaluation predicts five frames per forward pass: scores agree to float rounding.
            assert [(i.id, i.label) for i in live.candidates.instances] == [
                (i.id, i.label) for i in expected.prediction.instances
            ]
            assert [i.score for i in live.candidates.instances] == pytest.approx(
                [i.score for i in expected.prediction.instances], abs=1e-5
            )
            np.testing.assert_array_equal(live.candidates.label_image, expected.prediction.label_image)
            compared += len(live.track_ids)
    assert compared >= 20, "too few tracks compared to mean anything"


@pytest.mark.slow
def test_sequence_recorder_records_in_worker_processes_and_reads_its_cache_back(tmp_path):
    cfg = TrackingSequenceConfig(num_frames=3)
    recorded = SequenceRecorder(SHIPPED, cfg, jobs=2, cache=tmp_path).records(splits.TEST, 2)
    (folder,) = tmp_path.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == [f"{seed}.pkl" for seed in splits.seeds(splits.TEST, 2)]
    # The same model file in one process, and a single-process recording without a cache, give the same records.
    cached = SequenceRecorder(SHIPPED, cfg, jobs=1, cache=tmp_path).records(splits.TEST, 2)
    fresh = SequenceRecorder(SHIPPED, cfg, jobs=1).records(splits.TEST, 1)
    for records in (cached[:1], fresh):
        for mine, theirs in zip(records[0], recorded[0]):
            assert [i.label for i in mine.instances] == [i.label for i in theirs.instances]
            assert [i.score for i in mine.instances] == pytest.approx([i.score for i in theirs.instances], abs=1e-5)
            assert mine.truth_ids == theirs.truth_ids and mine.cues.camera_shift == theirs.cues.camera_shift
            assert np.array_equal(mine.instance_image, theirs.instance_image)
    # Another sequence config is another cache key.
    SequenceRecorder(SHIPPED, replace(cfg, num_frames=2), cache=tmp_path).records(splits.TEST, 1)
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.slow
def test_the_command_writes_its_result_and_a_cache_any_process_reads(tmp_path):
    out = tmp_path / "tracking.json"
    command = [sys.executable, "-m", "pmp_ros.eval.tracking", "--sequences", "1", "--validation-sequences", "1"]
    command += ["--frames", "2", "--jobs", "2", "--cache", str(tmp_path / "cache"), "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["setup"]["sequences"] == 1 and set(result["goals"]) == {
        "idf1_higher_with_tracking",
        "flicker_rate_at_least_halved",
    }
    # Records pickled by the command (run as __main__) load in this process, from the cache alone.
    cfg = TrackingSequenceConfig(num_frames=2)
    (records,) = SequenceRecorder(SHIPPED, cfg, cache=tmp_path / "cache").records(splits.EVAL, 1)
    assert isinstance(records[0], FrameRecord) and len(records) == 2
