"""Smoke test of the benchmark scripts: each runs with tiny counts and prints its table.

Only that they run and report: timing figures are never asserted (they depend on the machine).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(script, *args, timeout=400):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        timeout=timeout,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "machine: cpu=" in result.stdout or script == "gpu_bench.py", result.stdout
    return result.stdout


def test_bench_model(tmp_path):
    out = run(
        "bench_model.py",
        "--random-model",
        "--iterations",
        "2",
        "--warmup",
        "1",
        "--sizes",
        "320x240",
        "--json",
        str(tmp_path / "model.json"),
    )
    assert "parameters per module" in out and "postprocess" in out and "tower calls in frames" in out
    assert (tmp_path / "model.json").is_file()


def test_bench_node(tmp_path):
    pytest.importorskip("pmp_ros_msgs.msg")
    out = run(
        "bench_node.py",
        "--random-model",
        "--frames",
        "2",
        "--warmup",
        "1",
        "--sizes",
        "320x240",
        "--stream-size",
        "320x240",
        "--load-duration",
        "2",
        "--switches",
        "1",
        "--memory-duration",
        "3",
        "--memory-warmup",
        "1",
        "--idle-duration",
        "1",
        "--json",
        str(tmp_path / "node.json"),
    )
    for title in ("lockstep:", "load:", "switch:", "text:", "idle:", "memory:"):
        assert title in out, out
    report = json.loads((tmp_path / "node.json").read_text())
    threads = report["lockstep_threads"]["320x240"]
    assert threads[0]["cpu_ms_per_frame"] > 0 and threads[-1]["thread"] == "process total", threads
    assert any(row["thread"] == "executor (main)" for row in threads + report["load_threads"]), threads


def test_bench_cameras(tmp_path):
    pytest.importorskip("pmp_ros_msgs.msg")
    out = run(
        "bench_cameras.py",
        "--random-model",
        "--cameras",
        "1",
        "2",
        "--duration",
        "2",
        "--rate",
        "10",
        "--camera-batching",
        "batch",
        "round_robin",
        "--json",
        str(tmp_path / "cameras.json"),
    )
    assert "cameras on one node vs one node per camera" in out, out
    rows = json.loads((tmp_path / "cameras.json").read_text())["rows"]
    setups = {(row["setup"], row["camera"]) for row in rows}
    for setup in ("1 node, 2 camera(s), batch", "1 node, 2 camera(s), round_robin", "2 node(s), 1 camera each"):
        assert (setup, "cam1") in setups, setups
    assert all(row["rss_mib"] > 0 for row in rows), rows


def test_bench_frame_size(tmp_path):
    pytest.importorskip("sensor_msgs.msg")
    out = run(
        "bench_frame_size.py",
        "--resolutions",
        "320x240,640x480",
        "--repeats",
        "1",
        "--json",
        str(tmp_path / "frame_size.json"),
    )
    assert "largest rgb8 frame that arrived every time" in out and "best_effort" in out and "reliable" in out
    assert (tmp_path / "frame_size.json").is_file()


def test_frame_size_receiver_ends_with_the_bench():
    """The receiver shares the bench's stderr: if it outlived a bench that died, whoever reads that pipe
    (this suite, CI) would wait for it forever."""
    pytest.importorskip("sensor_msgs.msg")
    bench = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "bench_frame_size.py"), "--resolutions", "320x240", "--repeats", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, so that the finally below leaves no receiver behind
    )
    try:
        for line in bench.stdout:  # the first probe: the receiver runs and gets frames
            if "best_effort: 320x240" in line:
                break
        else:
            pytest.fail(f"the bench ended before its first probe: {bench.stderr.read()}")
        bench.kill()
        bench.communicate(timeout=30)  # returns once every holder of its stdout and stderr has ended
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bench.pid, signal.SIGKILL)


def test_profile_node():
    pytest.importorskip("pmp_ros_msgs.msg")
    if not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").is_file()):
        pytest.skip("py-spy not installed")
    out = run("profile_node.py", "--random-model", "--duration", "3", "--stream-size", "320x240")
    assert "inclusive share" in out and "FrameHandler.segment" in out
    out = run("profile_node.py", "--random-model", "--duration", "3", "--stream-size", "320x240", "--gil")
    assert "held the GIL" in out and "worker (SegmenterNode._work)" in out, out


def test_gpu_bench():
    import torch

    out = run("gpu_bench.py", "--random-model")
    if not torch.cuda.is_available():
        assert "no CUDA device: nothing measured" in out
    out = run(
        "gpu_bench.py",
        "--random-model",
        "--device",
        "cpu",
        "--precisions",
        "fp32",
        "--sizes",
        "64x64",
        "--batches",
        "1",
        "--iterations",
        "1",
        "--warmup",
        "1",
    )
    assert "segmenter forward" in out and "fp32" in out


def test_bench_objects3d(tmp_path):
    out = run(
        "bench_objects3d.py",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--sizes",
        "320x240",
        "--json",
        str(tmp_path / "o.json"),
    )
    assert "measure_objects per frame" in out and "+ cloud" in out and "standalone" in out
    assert (tmp_path / "o.json").is_file()


def test_bench_tracking(tmp_path):
    out = run("bench_tracking.py", "--sequences", "1", "--sizes", "320x240", "--json", str(tmp_path / "t.json"))
    assert "TrackingStage.track per frame" in out and "image check off" in out
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["n"] for r in rows] == [30, 30] and all(r["median_ms"] > 0 for r in rows)


def test_bench_onnx(tmp_path):
    out = run(
        "bench_onnx.py",
        "--random-model",
        "--threads",
        "1",
        "--iterations",
        "2",
        "--warmup",
        "1",
        "--sizes",
        "160x120",
        "--profile",
        "--json",
        str(tmp_path / "onnx.json"),
    )
    assert "onnxruntime" in out and "PyTorch median / ONNX Runtime median" in out
    assert "ONNX Runtime profile, 160x120" in out and "load_average_after" in out
    assert (tmp_path / "onnx.json").is_file()


def test_bench_models_writes_one_result_per_model_and_round(model_file, tmp_path):
    """scripts/bench_models.sh: one JSON per model and round, each naming the model it timed (one round of two
    models: each bench_model.py run loads a model and times its frames, minutes on a loaded machine)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "bench_models.sh")],
        cwd=REPO,
        timeout=900,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PMP_VENV": sys.prefix,
            "MODELS": f"a:{model_file} b:{model_file}",
            "OUT": str(tmp_path),
            "ROUNDS": "1",
            "ITERATIONS": "2",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["a_r1.json", "b_r1.json"]
    assert str(model_file) in (tmp_path / "b_r1.json").read_text()
