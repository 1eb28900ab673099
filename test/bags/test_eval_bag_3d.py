"""3D errors in pmp-eval-bag: the node's published objects for the matched targets against the ground truth's
3D truths (shipped model, real bags through real topics), and bags recorded before the ground truth had
those truths: read with them unknown, scored on everything else, 3D reported as not available and why."""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from pmp_ros.bags import evaluate as eval_bag
from pmp_ros.bags.messages import GT_OBJECT_TYPE, GT_TYPE, BagTopics, deserialize, frame_messages, truth_from_message
from pmp_ros.bags.storage import BAG_VERSION, STORAGES, inspect_bag, typestore
from pmp_ros.bags.writer import write_bag
from pmp_ros.data.streams import SequenceConfig, procedural_stream
from pmp_ros.eval.metrics.errors3d import GOALS

from ros_harness import NodeProcess, python_module

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "pmp_default.safetensors"
# Three frames of three scenes at 320x240 (the shipped model's input size): a few seconds on one CPU thread.
STREAM = SequenceConfig(seconds=0.2, fps=15, scene_seconds=0.1)
# msg/GroundTruthObject.msg as pmp-write-bag recorded it before the 3D truths.
OLD_OBJECT_DEFINITION = """uint16 id
string label
geometry_msgs/Point centre
uint32 area
"""


@pytest.fixture(scope="module")
def frames():
    return list(procedural_stream(STREAM))


def _write_old_bag(path: Path, frames, storage: str = "mcap") -> None:
    """The frames as a bag recorded before the 3D truths: its ground truth in the old GroundTruthObject, and
    that definition stored beside it."""
    current, old = typestore(), get_typestore(Stores.ROS2_KILTED)
    old.register(get_types_from_msg(OLD_OBJECT_DEFINITION, GT_OBJECT_TYPE))
    old.register(get_types_from_msg((ROOT / "msg" / "GroundTruth.msg").read_text(), GT_TYPE))  # unchanged
    old_truth, old_object = old.types[GT_TYPE], old.types[GT_OBJECT_TYPE]
    connections, instruction = {}, None
    with Writer(path, version=BAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
        for frame in frames:
            for role, msgtype, data in frame_messages(frame, frame.instruction != instruction):
                if role == "gt":
                    new = current.deserialize_cdr(data, GT_TYPE)
                    objects = [old_object(o.id, o.label, o.centre, o.area) for o in new.objects]
                    truth = old_truth(new.header, new.instance_image, objects, new.instruction, new.target_ids)
                    data = bytes(old.serialize_cdr(truth, GT_TYPE))
                if role not in connections:
                    connections[role] = writer.add_connection(getattr(BagTopics(), role), msgtype, typestore=old)
                writer.write(connections[role], frame.stamp_ns, data)
            instruction = frame.instruction


def _ground_truths(path: Path):
    contents, source = inspect_bag(path, BagTopics())
    return contents, [deserialize(m.data, GT_TYPE) for m in source() if m.role == "gt"]


def test_ground_truth_recorded_without_3d_truths_reads_with_them_unknown(tmp_path, frames):
    write_bag(tmp_path / "new", frames)
    for storage in STORAGES:
        _write_old_bag(tmp_path / f"old_{storage}", frames, storage)
    # A recording cut short is read record by record (salvage.py), with the definitions its schemas store.
    shutil.copytree(tmp_path / "old_mcap", tmp_path / "old_cut")
    (mcap,) = (tmp_path / "old_cut").glob("*.mcap")
    os.truncate(mcap, mcap.stat().st_size - 100)  # into the summary: rosbags cannot open it, the data is whole

    contents, current = _ground_truths(tmp_path / "new")
    assert not any("3D truths" in p for p in contents.problems) and len(current) == len(frames)
    for frame, truth in zip(frames, current):
        assert [o.shape for o in truth.objects] == [o.prism.shape for o in frame.objects]
        assert truth_from_message(truth).prisms.keys() == {o.id for o in frame.objects}

    for name in ("old_mcap", "old_sqlite3", "old_cut"):
        contents, old = _ground_truths(tmp_path / name)
        assert any("recorded without the 3D truths" in p for p in contents.problems), (name, contents.problems)
        assert (name == "old_cut") == any("record by record" in p for p in contents.problems)
        assert len(old) == len(frames), name
        for before, after in zip(current, old):
            assert after.instruction == before.instruction and list(after.target_ids) == list(before.target_ids)
            assert bytes(after.instance_image.data) == bytes(before.instance_image.data)
            for b, a in zip(before.objects, after.objects, strict=True):
                assert (a.id, a.label, a.centre, a.area) == (b.id, b.label, b.centre, b.area)
                assert a.shape == "" and math.isnan(a.occlusion) and math.isnan(a.visible_centre.x)
            truth = truth_from_message(after)
            assert truth.prisms == truth.visible_centres == truth.occlusions == {} and truth.centres


@pytest.mark.slow
def test_eval_bag_reports_the_3d_errors_of_the_nodes_objects_and_why_an_old_bag_has_none(tmp_path, frames):
    write_bag(tmp_path / "world", frames)
    _write_old_bag(tmp_path / "old", frames)
    params = {"model_path": SHIPPED, "device": "cpu", "use_depth": "true", "image_reliability": "reliable"}
    node_argv = python_module(
        "pmp_ros.ros.node",
        "--ros-args",
        *[x for k, v in {**params, "cpu_threads": 1}.items() for x in ("-p", f"{k}:={v}")],
    )
    out = tmp_path / "out"
    with NodeProcess(node_argv, name="running_node") as node:
        node.wait_for_output("pmp_segmenter ready", 180)
        # A running node: the player finds that it publishes objects and waits for them frame by frame.
        args = ["--use-running-node", "--lockstep", "--no-progress", "--out", str(out)]
        assert eval_bag.main([*args, str(tmp_path / "world"), str(tmp_path / "old")]) == 0
    world, old = json.loads((out / "summary.json").read_text())["bags"]

    assert world["problems"] == [] and world["results"] == world["frames"] == len(frames)
    objects_3d, accuracy = world["objects_3d"], world["accuracy"]["all"]
    assert world["objects_3d_note"] == f"{len(frames)} of {len(frames)} evaluated frames with the node's 3D objects"
    matched = objects_3d["matched"]
    # Every matched target got its instance's object, measured from depth: a centroid and a normal.
    assert matched["targets"] == accuracy["tp"] >= 5
    assert matched["centroid_error_m"]["count"] == matched["normal_error_deg"]["count"] == accuracy["tp"]
    assert objects_3d["matched_large"]["size_max_abs_error_m"]["count"] >= 1
    # Measured: centroid median 3.4 mm, normal median 2.7 degrees on the matched targets of >= 200 px; an error in
    # the truths' poses or the messages' conversions (a normal pixel, a frame) shows as centimetres and
    # tens of degrees.
    large = objects_3d["matched_large"]
    assert large["centroid_error_m"]["median"] < GOALS["centroid_error_m"] / 2
    assert large["normal_error_deg"]["median"] < GOALS["normal_error_deg"] / 2
    assert all(goal["met"] for goal in objects_3d["goals"].values())
    report = (out / "world" / "report.md").read_text()
    assert "## 3D objects of matched targets" in report and "| centroid (mm) |" in report
    assert "- goal: median normal error <= 10 deg on matched targets of >= 200 px: **met**" in report

    # The old bag: the same frames, so the same answers and accuracy; no 3D truths, and the report says why.
    assert old["accuracy"] == world["accuracy"] and old["objects_3d"] is None
    assert old["objects_3d_note"].startswith("the ground truth holds no 3D truths")
    assert any("recorded without the 3D truths" in p for p in old["problems"])
    assert f"3D errors not measured: {old['objects_3d_note']}." in (out / "old" / "report.md").read_text()
    np.testing.assert_equal(sorted(os.listdir(out)), ["old", "summary.json", "summary.md", "world"])
