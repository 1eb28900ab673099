"""The frame pipeline (pmp_ros/perception/frame.py) with a small real model on procedural RGB-D scenes:
what it publishes is the resolved subset of its candidates, each with its point and 3D object; a batch's
prediction gives what predicting the frame alone gives, and frames with the same prompts form a batch; points
and objects are measured within the depth range; an instruction without a target runs no model;
tracking gives the published instances their track ids."""

import dataclasses

import numpy as np
import pytest

from pmp_ros.data import splits
from pmp_ros.data.world import TabletopWorld
from pmp_ros.language.parse import parse_instruction
from pmp_ros.model.inference import Predictor
from pmp_ros.perception.frame import FrameInput, FramePipeline, FrameSettings
from pmp_ros.perception.tracking_stage import TrackingStage
from pmp_ros.tracking import TrackerParams

from model_fixtures import TRAIN_CLASSES, build_small_segmenter

SINGULAR = "pick up the red star and the green ring"
PLURAL = "pick up all red stars and all green rings"


@pytest.fixture(scope="module")
def pipeline():
    model, cfg = build_small_segmenter()
    # A random model rarely passes the shipped threshold: keep every candidate so that instances exist.
    predictor = Predictor(model, dataclasses.replace(cfg.inference, score_threshold=0.0), "cpu")
    return FramePipeline(predictor, TRAIN_CLASSES)


@pytest.fixture(scope="module")
def frames():
    world = TabletopWorld(128, 96)
    scenes = [world.render(seed) for seed in splits.seeds(splits.TEST, 3)]
    return [FrameInput(s.rgb, s.depth, s.K.matrix()) for s in scenes]


def test_the_published_instances_are_the_resolved_candidates_each_with_a_point_and_an_object(pipeline, frames):
    for text in (SINGULAR, PLURAL):
        parsed = parse_instruction(text)
        for frame in frames:
            result = pipeline.process(frame, parsed, FrameSettings(0.0))
            assert result.plan.prompts == ("red star", "green ring")
            candidates, published = result.candidates.instances, result.prediction.instances
            assert candidates, "the random model found nothing: nothing was checked"
            assert [candidates[i] for i in result.resolution.selected] == published
            per_prompt = [sum(i.prompt_index == p for i in published) for p in range(2)]
            if text == SINGULAR:  # the best instance of each target
                assert per_prompt == [min(1, sum(i.prompt_index == p for i in candidates)) for p in range(2)]
            else:
                assert published == candidates
            ids = set(np.unique(result.prediction.label_image)) - {0}
            assert ids == {i.id for i in published}
            assert len(result.points) == len(result.objects) == len(published)
            assert [o.instance_id for o in result.objects] == [i.id for i in published]
            for instance, point in zip(published, result.points):
                assert instance.mask[point.v, point.u]
            assert result.track_ids == {} and result.tracking is None
            assert set(result.timings) == {"predict", "track", "resolve", "locate", "measure"}


def test_without_depth_there_are_points_but_no_3d(pipeline, frames):
    result = pipeline.process(FrameInput(frames[0].rgb), parse_instruction(PLURAL), FrameSettings(0.0))
    assert result.prediction.instances and result.objects is None
    assert all(point.position is None for point in result.points)


def test_a_batchs_prediction_gives_what_the_frame_alone_gives(pipeline, frames):
    parsed = parse_instruction(PLURAL)
    plan = pipeline.plan(parsed)
    batch = pipeline.predict([f.rgb for f in frames], plan)
    for frame, prediction in zip(frames, batch):
        given = pipeline.process(frame, parsed, FrameSettings(0.0), plan=plan, prediction=prediction)
        alone = pipeline.process(frame, parsed, FrameSettings(0.0))
        assert given.timings["predict"] == 0.0 < alone.timings["predict"]
        np.testing.assert_array_equal(given.prediction.label_image, alone.prediction.label_image)
        assert [(i.id, i.label) for i in given.prediction.instances] == [
            (i.id, i.label) for i in alone.prediction.instances
        ]


def test_frames_whose_plans_give_the_same_prompts_form_a_batch(pipeline):
    plans = [
        pipeline.plan(parse_instruction(text)) for text in (PLURAL, "red star", SINGULAR, "not the cup", "red star")
    ]
    assert pipeline.batches(plans) == [[0, 2], [1, 4]]  # the exclusion alone has no target: no model, no batch
    assert pipeline.batches(plans[:2]) == []


def test_points_and_objects_are_measured_within_the_depth_range(pipeline, frames):
    parsed = parse_instruction(PLURAL)
    full = pipeline.process(frames[0], parsed, FrameSettings(0.0))
    assert any(point.position is not None for point in full.points)
    assert any(item.num_points for item in full.objects)
    beyond = pipeline.process(frames[0], parsed, FrameSettings(0.0, depth_range=(15.0, 20.0)))  # the table is nearer
    assert [i.id for i in beyond.prediction.instances] == [i.id for i in full.prediction.instances]
    assert all(point.position is None for point in beyond.points)
    assert not any(item.num_points for item in beyond.objects)


def test_the_publishing_threshold_cuts_the_candidates(pipeline, frames):
    parsed = parse_instruction(PLURAL)
    cut_something = 0
    for frame in frames:
        every = pipeline.process(frame, parsed, FrameSettings(0.0)).candidates.instances
        middle = (every[0].score + every[-1].score) / 2  # best first
        cut = pipeline.process(frame, parsed, FrameSettings(middle)).candidates.instances
        assert [i.id for i in cut] == [i.id for i in every if i.score >= middle]
        cut_something += len(cut) < len(every)
    assert cut_something, "no frame had instances on both sides of the threshold: nothing was checked"


def test_an_instruction_without_a_target_runs_no_model():
    model, cfg = build_small_segmenter()
    pipeline = FramePipeline(Predictor(model, cfg.inference, "cpu"), ())
    rgb = np.zeros((48, 64, 3), np.uint8)
    result = pipeline.process(FrameInput(rgb), parse_instruction("everything except the red star"), FrameSettings(0.5))
    assert pipeline.predictor.prompts == ()  # never prompted, so never run
    assert result.prediction.instances == [] and result.prediction.label_image.shape == (48, 64)
    assert result.resolution.note.startswith("no target") and result.points == [] and result.objects is None


def test_tracking_gives_the_published_instances_track_ids(pipeline, frames):
    parsed = parse_instruction(PLURAL)
    params = TrackerParams(new_track_score=0.0, min_hits=1, publish_score=0.0)
    with pytest.raises(ValueError, match="settings.tracker"):
        pipeline.process(frames[0], parsed, FrameSettings(0.0), tracking=TrackingStage())
    stage, settings = TrackingStage(), FrameSettings(0.0, tracker=params)
    for _ in range(2):  # the same frame twice: the same objects keep their tracks
        result = pipeline.process(frames[0], parsed, settings, tracking=stage)
        assert set(result.track_ids) == {i.id for i in result.prediction.instances} != set()
        assert result.tracking is not None
        tracks = result.track_ids
    first = pipeline.process(frames[0], parsed, settings, tracking=TrackingStage())
    assert sorted(tracks.values()) == sorted(first.track_ids.values())
