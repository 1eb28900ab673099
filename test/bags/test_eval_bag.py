"""pmp-eval-bag end to end through real topics with the node (small random model): lock-step accuracy equals a
direct evaluation of the same frames without ROS, timed playback counts drops honestly, and damaged or
incomplete bags give clear messages with partial results."""

import json
import os

import numpy as np
import pytest
import torch

from pmp_ros.bags import evaluate as eval_bag
from pmp_ros.bags.evaluate import EvalOptions, evaluate_bags
from pmp_ros.bags.messages import BagTopics, frame_messages
from pmp_ros.bags.storage import BagWriter
from pmp_ros.bags.writer import write_bag
from pmp_ros.data.streams import SequenceConfig, procedural_stream
from pmp_ros.eval.metrics.frame_metrics import (
    FramePrediction,
    FrameTruth,
    aggregate_instruction_metrics,
    instruction_frame_metrics,
)

from ros_harness import NodeProcess, python_module

# 12 frames, two scenes, an instruction change every 3 frames; small images keep the node fast.
STREAM = SequenceConfig(width=160, height=120, seconds=0.4, instruction_seconds=0.1, scene_seconds=0.2)
# A random model labels nearly every query with a training class, and those never become instances; one
# made-up context class leaves the prompts in charge, so frames have instances to score. Without tracking,
# each frame's result is its own, as direct_evaluation computes it.
CONTEXT = ("table",)
NODE_PARAMS = {
    "cpu_threads": "1",
    "score_threshold": "0.0",
    "tracking": "false",
    "context_vocabulary": "['table']",
    "inference_width": "320",
    "inference_height": "240",
}


@pytest.fixture(scope="module")
def frames():
    return list(procedural_stream(STREAM))


@pytest.fixture(scope="module")
def bags(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("bags")
    for storage in ("mcap", "sqlite3"):
        write_bag(folder / storage, frames, storage)
    return folder


def direct_evaluation(model_file, frames):
    """The node's computation without ROS: same checkpoint, thresholds, context, input size, point rule."""
    from pmp_ros.geometry import locate_instances
    from pmp_ros.language.parse import parse_instruction
    from pmp_ros.model.inference import Predictor
    from pmp_ros.perception.frame import DEPTH_WINDOW

    torch.set_num_threads(1)
    predictor, _ = Predictor.from_checkpoint(
        model_file, "cpu", "fp32", size=(240, 320), score_threshold=0.0, mask_threshold=0.5, max_instances=20
    )
    records = []
    for frame in frames:
        predictor.set_prompts(parse_instruction(frame.instruction).targets, CONTEXT)
        prediction = predictor.predict([frame.rgb])[0]
        points = locate_instances([i.mask for i in prediction.instances], frame.depth_mm, frame.k, DEPTH_WINDOW)
        pred = FramePrediction(
            prediction.label_image,
            [(i.id, i.label, i.score) for i in prediction.instances],
            [(i.id, p.u, p.v, p.position) for i, p in zip(prediction.instances, points)],
        )
        truth = FrameTruth(
            frame.instance,
            {o.id: o.label for o in frame.objects},
            frame.target_ids,
            {o.id: o.centre for o in frame.objects},
            frame.prompts,
        )
        records.append(instruction_frame_metrics(pred, truth))
    return records


def test_lockstep_accuracy_equals_direct_evaluation_for_mcap_and_sqlite3(
    tmp_path, model_file, frames, bags, monkeypatch
):
    options = EvalOptions(model=str(model_file), lockstep=True, device="cpu", node_params=NODE_PARAMS, progress=False)
    # Two jobs and no ROS_DOMAIN_ID (a set one keeps every bag in it, one after another:
    # test_eval_bag_domains.py): the bags run in parallel processes, each with its own node and random domain.
    monkeypatch.delenv("ROS_DOMAIN_ID")
    reports = evaluate_bags([bags / "mcap", bags / "sqlite3"], options, tmp_path / "out", jobs=2)
    records = direct_evaluation(model_file, frames)
    expected = aggregate_instruction_metrics(records)
    assert sum(len(r["predictions"]) for r in records) > 0  # the comparison is not between empty outputs
    for report, name in zip(reports, ("mcap", "sqlite3")):
        assert report["problems"] == [], report["problems"]
        assert report["frames"] == report["results"] == len(frames) and report["dropped"] == 0
        assert report["accuracy"] == expected
        saved = json.loads((tmp_path / "out" / name / "report.json").read_text())
        assert [(f["tp"], f["fp"], f["fn"]) for f in saved["per_frame"]] == [
            (r["tp"], r["fp"], r["fn"]) for r in records
        ]
        assert all(f["latency_ms"] > 0 for f in saved["per_frame"])
        for file in ("report.md", "latency_hist.png", "latency_timeline.png"):
            assert (tmp_path / "out" / name / file).stat().st_size > 0
    assert "| [mcap](mcap/report.md) | lockstep | 12 | 12 | 0 |" in (tmp_path / "out" / "summary.md").read_text()


def test_timed_playback_reports_drops_honestly(tmp_path, model_file):
    # 60 frames at twice real time: 60 frames/s for 1 s, faster than the model, so the node must drop frames;
    # long enough that the instruction reaches the node while frames still come.
    frames = list(
        procedural_stream(
            SequenceConfig(width=160, height=120, seconds=2.0, instruction_seconds=0.5, scene_seconds=1.0)
        )
    )
    write_bag(tmp_path / "timed", frames, "mcap")
    options = EvalOptions(model=str(model_file), rate=2.0, device="cpu", node_params=NODE_PARAMS, progress=False)
    (report,) = evaluate_bags([tmp_path / "timed"], options, tmp_path / "out")
    assert report["frames"] == len(frames) == 60
    assert report["results"] + report["dropped"] == report["frames"] and report["dropped"] > 0
    assert report["results"] > 0
    per_frame = json.loads((tmp_path / "out" / "timed" / "report.json").read_text())["per_frame"]
    assert sum(f["latency_ms"] is not None for f in per_frame) == report["results"]
    assert report["accuracy"]["frames"] == report["results"]  # accuracy only on answered frames


def _write_without(path, frames, *roles):
    """A bag of the standard layout lacking these roles' topics."""
    instruction = None
    with BagWriter(path, "mcap") as writer:
        for frame in frames:
            for r, msgtype, data in frame_messages(frame, frame.instruction != instruction):
                if r not in roles:
                    writer.write(getattr(BagTopics(), r), msgtype, frame.stamp_ns, data)
            instruction = frame.instruction


def test_damaged_and_incomplete_bags_give_clear_messages_and_partial_results(
    tmp_path, model_file, frames, write_odd_bag
):
    _write_without(tmp_path / "no_gt", frames, "gt")
    _write_without(tmp_path / "no_instruction", frames, "instruction")
    big = list(procedural_stream(SequenceConfig(seconds=0.4)))  # 320x240: many chunks, so truncation keeps some
    write_bag(tmp_path / "truncated", big, "mcap")
    (mcap,) = (tmp_path / "truncated").glob("*.mcap")
    os.truncate(mcap, mcap.stat().st_size // 2)
    write_odd_bag(tmp_path / "odd")
    write_bag(tmp_path / "corrupt", frames, "sqlite3")
    (db,) = (tmp_path / "corrupt").glob("*.db3")
    os.truncate(db, db.stat().st_size // 2)

    argv = [
        f"{k}:={v}"
        for k, v in {
            "model_path": model_file,
            "device": "cpu",
            "use_depth": "true",
            "image_reliability": "reliable",
            **NODE_PARAMS,
        }.items()
    ]
    node_argv = python_module("pmp_ros.ros.node", "--ros-args", *[x for a in argv for x in ("-p", a)])
    names = ("no_gt", "no_instruction", "truncated", "odd", "corrupt")
    with NodeProcess(node_argv, name="running_node") as node:
        node.wait_for_output("pmp_segmenter ready", 180)
        code = eval_bag.main(
            [
                "--use-running-node",
                "--lockstep",
                "--no-progress",
                "--out",
                str(tmp_path / "out"),
                *[str(tmp_path / n) for n in names],
            ]
        )
    assert code == 1  # two bags had nothing to play; the others were measured
    reports = dict(zip(names, json.loads((tmp_path / "out" / "summary.json").read_text())["bags"]))

    no_gt = reports["no_gt"]
    assert no_gt["results"] == no_gt["frames"] == len(frames) and no_gt["accuracy"] is None
    assert no_gt["latency_ms"]["p50"] > 0 and "no gt topic /ground_truth in the bag" in no_gt["problems"]

    no_instruction = reports["no_instruction"]
    assert no_instruction["results"] == len(frames) and no_instruction["accuracy"]["frames"] == len(frames)
    assert "instructions taken from the ground truth messages" in no_instruction["problems"]

    truncated = reports["truncated"]
    assert 0 < truncated["frames"] < len(big) and truncated["results"] == truncated["frames"]
    assert any("record by record" in p for p in truncated["problems"])

    odd = reports["odd"]
    assert odd["frames"] == 0 and "nothing to play without images" in odd["problems"]
    # The topics the bag has, so that the user can name the image topic (--image-topic).
    assert (
        "topics in the bag: /depth/image (foo_msgs/msg/Bar), /image (std_msgs/msg/String); --image-topic "
        "names the colour image topic" in odd["problems"]
    )
    assert any("foo_msgs/msg/Bar" in p for p in odd["problems"])

    corrupt = reports["corrupt"]
    assert corrupt["frames"] == 0 and corrupt["problems"][0].startswith("cannot open bag")
    for name in names:
        assert "# Evaluation of" in (tmp_path / "out" / name / "report.md").read_text()
    np.testing.assert_equal(sorted(os.listdir(tmp_path / "out")), sorted([*names, "summary.json", "summary.md"]))


def test_a_bag_without_any_instruction_fails_at_once(tmp_path, model_file, frames, capsys):
    _write_without(tmp_path / "silent", frames, "instruction", "gt")
    args = [
        str(tmp_path / "silent"),
        "--model",
        str(model_file),
        "--device",
        "cpu",
        "--lockstep",
        "--no-progress",
        *[x for k, v in NODE_PARAMS.items() for x in ("--node-param", f"{k}:={v}")],
    ]
    # Nothing could tell the node what to segment: every frame would wait out its timeout, then count as
    # dropped. Known from the bag's topics alone, so no node starts.
    code = eval_bag.main([*args, "--frame-timeout", "1", "--out", str(tmp_path / "refused")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert (
        err.count("\n") == 1
        and "no instruction topic /instruction, no ground truth topic /ground_truth and no --instruction" in err
        and str(tmp_path / "silent") in err
    )
    assert not (tmp_path / "refused").exists()

    assert eval_bag.main([*args, "--instruction", "pick up the red star", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "silent" / "report.json").read_text())
    assert report["results"] == report["frames"] == len(frames)
    assert "instruction 'pick up the red star' from the command line" in report["problems"]
