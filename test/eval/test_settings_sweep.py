"""pmp-eval sweep: the settings it picks on a COCO-format validation split go into a checkpoint copy, and the
node started on that copy runs with them as the checkpoint's."""

import json

import pytest
from safetensors import safe_open

from pmp_ros.data.make_coco import main as make_coco
from pmp_ros.eval.cli import main as pmp_eval
from pmp_ros.model.checkpoint import read_checkpoint
from pmp_ros.ros.node import READY_TEXT

from model_fixtures import write_small_checkpoint
from ros_harness import NodeProcess, node_argv

STARTUP_TIMEOUT_S = 180.0


def test_the_sweep_writes_its_choice_and_the_node_runs_with_it_from_the_checkpoint(tmp_path, capsys):
    make_coco(["--out", str(tmp_path / "val"), "--scenes", "2"])
    model = write_small_checkpoint(tmp_path / "small.safetensors")
    tuned = tmp_path / "tuned.safetensors"
    # Neither threshold is the small model's own (0.5), so the node's log can only show the sweep's choice.
    argv = ["sweep", "--json", str(tmp_path / "val" / "instances.json"), "--model", str(model), "--out", str(tuned)]
    assert pmp_eval([*argv, "--thresholds", "0.05", "0.35", "--alpha", "0.3", "0.4", "--device", "cpu"]) == 0
    assert "(chosen)" in capsys.readouterr().out

    before_state, before, _ = read_checkpoint(model)
    state, cfg, metadata = read_checkpoint(tuned)
    sweep = json.loads(metadata["settings_sweep"])
    grid, chosen = sweep["grid"], sweep["chosen"]
    assert len(grid) == 4 and chosen == max(grid, key=lambda r: r["f1"] or 0.0)
    assert (cfg.inference.score_threshold, cfg.ensemble.alpha) == (chosen["score_threshold"], chosen["alpha"])
    assert cfg.inference.score_threshold in (0.05, 0.35) and before.inference.score_threshold == 0.5
    # Same weights; nothing else in the config moved.
    assert state.keys() == before_state.keys() and all((state[k] == before_state[k]).all() for k in state)
    assert cfg.inference.size == before.inference.size and cfg.decoder == before.decoder
    with safe_open(str(tuned), "pt") as f:
        assert f.metadata()["source"] == str(model)

    with NodeProcess(node_argv({"model_path": str(tuned), "device": "cpu", "cpu_threads": 1}), name="swept") as proc:
        proc.wait_for_output(READY_TEXT, STARTUP_TIMEOUT_S)
        assert f"score_threshold {chosen['score_threshold']} (checkpoint)" in proc.output()


def test_the_sweep_refuses_to_overwrite_its_model(tmp_path, capsys):
    model = write_small_checkpoint(tmp_path / "small.safetensors")
    with pytest.raises(SystemExit) as stop:
        pmp_eval(["sweep", "--json", "x.json", "--model", str(model), "--out", str(model)])
    assert stop.value.code == 2 and "--out must differ" in capsys.readouterr().err
