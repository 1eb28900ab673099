"""pmp-demo end to end on the small random model: files written, every frame answered, quickly."""

import json
import time

import imageio.v2 as imageio
import pytest

from pmp_ros import demo


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from model_fixtures import write_small_checkpoint

    return write_small_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_demo_writes_overlays_gif_and_report(tmp_path, model_file, capsys):
    start = time.monotonic()
    code = demo.main(
        [
            "--model",
            str(model_file),
            "--out",
            str(tmp_path / "demo"),
            "--frames-per-instruction",
            "3",
            "--device",
            "cpu",
        ]
    )
    elapsed = time.monotonic() - start
    out = tmp_path / "demo"
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == metrics["results"] == 9 and metrics["dropped"] == 0
    assert metrics["overlays_from_node"] >= 8  # the first may precede the node's discovery of the subscription
    assert list(metrics["per_instruction"]) == metrics["instructions"]
    assert metrics["instructions"][0] == "pick up the red star"
    assert metrics["overall"]["frames"] == 9 and metrics["latency_ms"]["p50"] > 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:04d}.png" for i in range(9)]
    gif = imageio.mimread(out / "demo.gif")
    assert len(gif) == 9 and gif[0].shape[:2] == (240 + 22, 320)  # banner above each overlay
    assert "| pick up the red star |" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "9/9 frames answered" in printed and str(out) in printed
    assert elapsed < 60


def test_demo_without_a_model_says_what_to_do(tmp_path, capsys):
    assert demo.main(["--model", str(tmp_path / "absent.safetensors"), "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err
    assert "model not found" in err and "--model" in err
