"""The frame pipeline's tracking stage (pmp_ros/perception/tracking_stage.py): its cut of a detection-threshold
prediction is the prediction at the publishing threshold, the tracks it publishes form a consistent label
image, observe + follow is track; the tracker's node parameters are TrackerParams' fields with their
defaults, in the parameter file too."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from pmp_ros import paths
from pmp_ros.data import splits, vocabulary
from pmp_ros.data.sequences import TrackingSequenceConfig, sequence_frames, sequence_script, tracking_world
from pmp_ros.data.world import TabletopWorld
from pmp_ros.model.inference import Instance, Prediction
from pmp_ros.objects3d import measure_objects, object_centroids
from pmp_ros.perception.tracking_stage import TrackingStage, above_threshold, detection_settings
from pmp_ros.ros import interface
from pmp_ros.tracking import TrackerParams

PARAMS_FILE = Path(__file__).resolve().parents[2] / "config" / "pmp.yaml"


@pytest.fixture(scope="module")
def shipped():
    """(Predictor at the tracker's detection settings, the checkpoint's InferenceConfig)."""
    import torch

    from pmp_ros.model.inference import Predictor

    torch.set_num_threads(1)
    predictor, cfg = Predictor.from_checkpoint(paths.model_file("pmp_default.safetensors"), device="cpu")
    predictor.cfg = detection_settings(cfg.inference)
    return predictor, cfg.inference


def _frames(seed: int):
    cfg = TrackingSequenceConfig()
    world = tracking_world(cfg)
    return list(sequence_frames(world, sequence_script(world, seed, cfg), cfg))


def test_a_cut_prediction_is_the_prediction_at_that_threshold(shipped):
    predictor, inference = shipped
    at_threshold = dataclasses.replace(predictor.cfg, score_threshold=inference.score_threshold)
    frames = _frames(splits.TEST[0])[:5]
    predictor.set_prompts(frames[0].prompts, vocabulary.all_classes())
    cut_something = 0
    for frame in frames:
        detected = predictor.predict([frame.rgb], semantic=False)[0]
        predictor.cfg, floor = at_threshold, predictor.cfg
        try:
            direct = predictor.predict([frame.rgb], semantic=False)[0]
        finally:
            predictor.cfg = floor
        cut = above_threshold(detected, inference.score_threshold)
        cut_something += len(detected.instances) > len(cut.instances)
        np.testing.assert_array_equal(cut.label_image, direct.label_image)
        fields = [[(i.id, i.label, i.prompt_index, i.score, i.box, i.area) for i in p.instances] for p in (cut, direct)]
        assert fields[0] == fields[1]
    assert cut_something, "no frame had an instance between the two thresholds: nothing was checked"


def _instance(instance_id: int, mask: np.ndarray, score: float, label: str = "red star") -> Instance:
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    return Instance(instance_id, label, 0, score, box, int(mask.sum()), mask, np.ones(4, np.float32))


def _prediction(*squares) -> Prediction:
    """A prediction of square instances (x, y, side, score), ids in the given order."""
    label_image = np.zeros((40, 60), np.uint16)
    instances = []
    for number, (x, y, side, score) in enumerate(squares, start=1):
        mask = np.zeros(label_image.shape, bool)
        mask[y : y + side, x : x + side] = True
        mask &= label_image == 0
        label_image[mask] = number
        instances.append(_instance(number, mask, score))
    return Prediction(label_image, instances, None)


def test_a_missed_track_takes_only_the_pixels_no_found_one_has():
    rgb = np.zeros((40, 60, 3), np.uint8)
    stage, params = TrackingStage(), TrackerParams(max_misses=5)
    for x in range(3):  # two squares, the second sliding right by 4 px a frame into the first
        stage.track(_prediction((20, 10, 10, 0.9), (4 + 4 * x, 12, 10, 0.8)), rgb, None, None, ["red star"], params)
    # The sliding square is not found; its predicted position overlaps the still one, which stays found.
    published, track_ids = stage.track(_prediction((20, 10, 10, 0.9)), rgb, None, None, ["red star"], params)
    assert len(published.instances) == 2 and sorted(track_ids.values()) == [1, 2]
    found, missed = sorted(published.instances, key=lambda i: track_ids[i.id])
    assert missed.embedding is None and found.embedding is not None
    assert not (missed.mask & found.mask).any() and missed.area == missed.mask.sum() > 0
    for instance in published.instances:
        np.testing.assert_array_equal(published.label_image == instance.id, instance.mask)
        x0, y0, x1, y1 = instance.box
        assert instance.mask[y0 : y1 + 1, x0 : x1 + 1].sum() == instance.area


def test_new_prompts_end_the_tracks_of_labels_they_do_not_name_and_a_new_frame_size_ends_all():
    rgb, params = np.zeros((40, 60, 3), np.uint8), TrackerParams(min_hits=1)
    stage = TrackingStage()
    _, first = stage.track(_prediction((5, 5, 8, 0.9)), rgb, None, None, ["red star", "cup"], params)
    _, kept = stage.track(_prediction((5, 5, 8, 0.9)), rgb, None, None, ["red star"], params)
    assert first == kept == {1: 1}
    cup = _prediction((5, 5, 8, 0.9))
    cup = dataclasses.replace(cup, instances=[dataclasses.replace(cup.instances[0], label="cup")])
    stage.track(cup, rgb, None, None, ["cup"], params)  # the red star's track ends; the cup starts track 2
    _, restarted = stage.track(_prediction((5, 5, 8, 0.9)), rgb, None, None, ["red star"], params)
    assert restarted == {1: 3}
    bigger = np.zeros((48, 64, 3), np.uint8)
    big_prediction = Prediction(np.pad(_prediction((5, 5, 8, 0.9)).label_image, ((0, 8), (0, 4))), [], None)
    big_prediction = dataclasses.replace(big_prediction, instances=[_instance(1, big_prediction.label_image == 1, 0.9)])
    _, other_camera = stage.track(big_prediction, bigger, None, None, ["red star"], params)
    assert other_camera == {1: 4}  # a new track: ids are never given again (Instance.msg)


def test_track_ids_are_not_reused_after_a_reset():
    """Tracking turned off and on again (the node resets the stage) or the stream stopped and started: the
    next object gets a new id, not 1 again."""
    rgb, params = np.zeros((40, 60, 3), np.uint8), TrackerParams(min_hits=1)
    stage = TrackingStage()
    _, first = stage.track(_prediction((5, 5, 8, 0.9), (30, 20, 8, 0.8)), rgb, None, None, ["red star"], params)
    assert sorted(first.values()) == [1, 2]
    stage.reset()
    _, after = stage.track(_prediction((5, 5, 8, 0.9)), rgb, None, None, ["red star"], params)
    assert after == {1: 3}


def test_object_centroids_are_measure_objects_centroids():
    for seed in splits.seeds(splits.TEST, 2):
        scene = TabletopWorld().render(seed)
        masks = [scene.mask(o.id) for o in scene.objects]
        depth_mm = np.round(scene.depth_gt * 1000).astype(np.uint16)
        depth_mm[::7, ::5] = 0  # missing readings
        expected = [o.centroid for o in measure_objects(masks, depth_mm, scene.K.matrix())]
        assert object_centroids(masks, depth_mm, scene.K.matrix()) == expected
        assert object_centroids(masks, depth_mm, [0.0] * 9) == [None] * len(masks)


def test_tracker_parameters_are_trackerparams_fields_with_their_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(TrackerParams)}
    declared = {
        p.name.removeprefix(interface.TRACKER_PREFIX): p.default
        for p in interface.PARAMETERS
        if p.name.startswith(interface.TRACKER_PREFIX)
    }
    assert declared == {name: value for name, value in fields.items() if name != "publish_score"}
    params = {p.name: p.default for p in interface.PARAMETERS}
    assert interface.tracker_params(params, publish_score=0.3) == TrackerParams(publish_score=0.3)
    file_values = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]  # any node name
    tracking = {name: value for name, value in file_values.items() if name.startswith("tracking")}
    assert tracking == {name: params[name] for name in params if name.startswith("tracking")}
