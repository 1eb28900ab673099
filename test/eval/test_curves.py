"""Learning curves from a run's snapshots (python -m pmp_ros.eval.curves RUN --snapshots)."""

import json

from pmp_ros.eval.curves import main, snapshot_quality
from pmp_ros.eval.evaluate import evaluate
from pmp_ros.model.segmenter import load_segmenter

from model_fixtures import write_small_checkpoint


def test_each_snapshot_is_evaluated_on_validation_in_step_order(tmp_path):
    run = tmp_path / "run"
    write_small_checkpoint(run / "snapshots" / "step_000010.safetensors", seed=1)
    write_small_checkpoint(run / "snapshots" / "step_000002.safetensors", seed=0)
    rows = snapshot_quality(run, scenes=2)
    assert [r["step"] for r in rows] == [2, 10]
    model, cfg = load_segmenter(run / "snapshots" / "step_000010.safetensors")
    direct = evaluate(model, cfg, 2, progress=False, split="validation")
    assert rows[1]["F1@0.5"] == direct["instruction"]["all"]["f1"]
    assert rows[1]["proposal recall@16"] == direct["proposals"]["all"]["recall"]["all"]
    assert [r["step"] for r in snapshot_quality(run, scenes=1, every=5)] == [10]  # only multiples of 5


def test_the_command_writes_the_plot_and_its_figures(tmp_path):
    run = tmp_path / "run"
    write_small_checkpoint(run / "snapshots" / "step_000005.safetensors")
    out = tmp_path / "curve.png"
    main([str(run), "--snapshots", "--scenes", "1", "--out", str(out)])
    assert out.stat().st_size > 0
    assert [r["step"] for r in json.loads(out.with_suffix(".json").read_text())["run"]] == [5]
