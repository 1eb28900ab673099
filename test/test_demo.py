"""pmp-demo end to end on the small random model: files written, every frame answered, quickly; on the
shipped model the node on ONNX Runtime reports the figures of the node on PyTorch."""

import json
import time
from pathlib import Path

import imageio.v2 as imageio
import pytest

from pmp_ros import demo, paths
from pmp_ros.ros.node import DEFAULT_MODEL
from pmp_ros.viz.overlay import BANNER_LINE_PX

# The ONNX parity tolerance (docs/deployment.md): the same instances, masks within IoU 0.99 of each other.
MASK_IOU_TOLERANCE = 0.01
# A 3D point is the mask's interior point at its median depth: a mask one pixel apart moves it a pixel.
POINT_3D_TOLERANCE_M = 0.005


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
    banner = 2 * BANNER_LINE_PX + 4  # two lines above each overlay: the instruction, its resolution
    assert len(gif) == 9 and gif[0].shape[:2] == (240 + banner, 320)
    assert "| pick up the red star |" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "9/9 frames answered" in printed and str(out) in printed
    assert elapsed < 60


def test_demo_without_a_model_says_what_to_do(tmp_path, capsys):
    assert demo.main(["--model", str(tmp_path / "absent.safetensors"), "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err
    assert "model not found" in err and "--model" in err


@pytest.mark.slow
def test_demo_on_onnxruntime_reports_the_figures_of_pytorch(tmp_path, capsys):
    # The shipped model: a random one finds nothing, and equal empty figures would prove nothing.
    common = ["--frames-per-instruction", "2", "--device", "cpu"]
    assert demo.main([*common, "--out", str(tmp_path / "torch")]) == 0, capsys.readouterr().err
    assert demo.main([*common, "--out", str(tmp_path / "onnx"), "--backend", "onnxruntime"]) == 0, (
        capsys.readouterr().err
    )
    expected, got = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("torch", "onnx"))
    assert expected["backend"] == "torch" and got["backend"] == "onnxruntime"
    graph = Path(got["onnx_path"])  # no --onnx-path: exported into the output folder
    assert graph == tmp_path / "onnx" / "pmp_default.onnx"
    assert got["frames"] == got["results"] == expected["results"] == 6
    assert expected["overall"]["all"]["tp"] > 0  # the figures compared are not all empty
    for instruction, want in expected["per_instruction"].items():
        have = got["per_instruction"][instruction]
        assert {k: have[k] for k in ("tp", "fp", "fn")} == {k: want[k] for k in ("tp", "fp", "fn")}, instruction
        assert have["points_inside_share"] == want["points_inside_share"], instruction
        if want["mean_target_iou"] is not None:
            assert have["mean_target_iou"] == pytest.approx(want["mean_target_iou"], abs=MASK_IOU_TOLERANCE)
        if want["error_3d_m"]["median"] is not None:
            assert have["error_3d_m"]["median"] == pytest.approx(want["error_3d_m"]["median"], abs=POINT_3D_TOLERANCE_M)
    assert "on onnxruntime" in (tmp_path / "onnx" / "report.md").read_text()
    # A later run reuses the graph exported from the same checkpoint.
    exported_at = graph.stat().st_mtime_ns
    assert demo.onnx_graph(paths.model_file(DEFAULT_MODEL), None, tmp_path / "onnx") == graph
    assert graph.stat().st_mtime_ns == exported_at


def test_demo_onnx_path_must_exist(tmp_path, capsys):
    missing = tmp_path / "absent.onnx"
    code = demo.main(["--backend", "onnxruntime", "--onnx-path", str(missing), "--out", str(tmp_path / "demo")])
    assert code == 1 and f"ONNX graph not found: {missing}" in capsys.readouterr().err
