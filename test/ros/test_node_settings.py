"""The node's settings (pmp_ros/ros/node_settings.py): one typed field per parameter of the table, built once
from the parameter values and back, changed as a whole, the inference settings and their description."""

import dataclasses

import pytest

from pmp_ros.model.config import InferenceConfig
from pmp_ros.ros import interface
from pmp_ros.ros.node_settings import NodeSettings, StartupError, change_problem, validated
from pmp_ros.tracking import TrackerParams

DEFAULTS = {spec.name: spec.default for spec in interface.PARAMETERS}


def test_every_parameter_is_one_field_and_the_values_round_trip():
    fields = {field.name for field in dataclasses.fields(NodeSettings)} - {"tracker"}
    tracker = {spec.name for spec in interface.TRACKER_PARAMETERS}
    assert fields == {spec.name for spec in interface.PARAMETERS} - tracker
    settings = NodeSettings.from_values(DEFAULTS)
    assert settings.values() == DEFAULTS  # lists as rclpy gives them
    assert settings.cameras == ("",) and settings.camera_names == ("",)
    assert settings.tracker == dataclasses.replace(TrackerParams(), publish_score=TrackerParams.publish_score)


def test_settings_are_frozen_and_change_as_a_whole():
    settings = NodeSettings.from_values(DEFAULTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.tracking = False
    changed = settings.changed({"tracking": False, "tracking_min_hits": 5, "context_vocabulary": ["cup", "bowl"]})
    assert (changed.tracking, changed.tracker.min_hits, changed.context_vocabulary) == (False, 5, ("cup", "bowl"))
    assert settings.tracking and settings.tracker.min_hits == TrackerParams.min_hits
    assert changed.tracker_params(0.4).publish_score == 0.4
    assert changed.text(("red star",)) == (("cup", "bowl"), None)
    assert settings.text(("red star",)) == (("red star",), None)


def test_bad_values_are_refused_with_the_reason():
    with pytest.raises(StartupError, match="depth_min .* must be below depth_max"):
        validated({**DEFAULTS, "depth_min": 3.0, "depth_max": 2.0})
    with pytest.raises(StartupError, match="score_threshold must be <= 1.0"):
        validated({**DEFAULTS, "score_threshold": 1.5})
    settings = validated(DEFAULTS)
    assert "unknown parameter nonsense" == change_problem(settings, {"nonsense": 1})
    assert "must be below" in change_problem(settings, {"depth_min": 15.0, "depth_max": 10.0})
    assert change_problem(settings, {"depth_min": 0.2}) is None


def test_inference_settings_take_the_parameters_that_are_set():
    checkpoint = InferenceConfig()
    settings = NodeSettings.from_values({**DEFAULTS, "score_threshold": 0.5, "inference_width": 320})
    cfg = settings.inference(checkpoint)
    assert (cfg.score_threshold, cfg.size) == (0.5, (checkpoint.size[0], 320))
    assert cfg.mask_threshold == checkpoint.mask_threshold  # left to the checkpoint
    tracked = settings.predictor_inference(checkpoint)  # tracking on: instances from the detection floor
    assert tracked.score_threshold < 0.5
    assert settings.changed({"tracking": False}).predictor_inference(checkpoint) == cfg
    description = settings.describe_inference(checkpoint)
    assert "score_threshold 0.5 (parameter)" in description
    assert f"mask_threshold {checkpoint.mask_threshold} (checkpoint)" in description
    assert description.endswith(f"tracking on (instances from score {tracked.score_threshold})")


def test_camera_batching_follows_the_backend_on_auto():
    settings = NodeSettings.from_values(DEFAULTS)
    assert settings.batching_cameras
    assert not settings.changed({"backend": "onnxruntime"}).batching_cameras
    assert settings.changed({"backend": "onnxruntime", "camera_batching": "batch"}).batching_cameras
    assert not settings.changed({"camera_batching": "round_robin"}).batching_cameras
