"""pmp-demo: the whole system in one command, nothing to set up.

    pmp-demo                      # shipped model, output in demo_out/
    pmp-demo --model my.safetensors --out /tmp/demo
    pmp-demo --backend onnxruntime [--onnx-path model.onnx]   # the node on ONNX Runtime (docs/deployment.md)
    pmp-demo --foxglove [PORT] [--mcap demo.mcap]   # watch it live in Foxglove (ws://localhost:8765), record it

Generates a procedural RGB-D camera stream in memory (one tabletop scene, slowly panning camera), starts the
pmp_segmenter node in its own process and sends it three instructions in turn: a single target ("pick up
the red star"), several targets, and a class the model never saw in training. Frames go through real ROS
topics in lock-step (each frame answered before the next). Writes the node's overlay images, an animated
GIF, report.md and metrics.json (instruction F1 and point accuracy against the world's ground truth,
latency) to the output folder. DDS traffic stays on this machine, in its own domain unless ROS_DOMAIN_ID
is set. With --backend onnxruntime and no --onnx-path, the model is exported (pmp-export-onnx, at its own
inference size) into the output folder first, or a graph already there from the same checkpoint is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from pmp_ros import paths
from pmp_ros.bags.messages import frame_messages, prediction_from_messages, truth_from_message
from pmp_ros.bags.player import FrameLog, Player
from pmp_ros.bags.storage import BagMessage
from pmp_ros.data import splits, vocabulary
from pmp_ros.data.streams import SequenceConfig, StreamFrame, procedural_stream
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.deploy import metadata
from pmp_ros.deploy.export import export_onnx
from pmp_ros.eval.metrics.frame_metrics import aggregate_instruction_metrics, instruction_frame_metrics
from pmp_ros.eval.report import format_value, latency_summary
from pmp_ros.language.parse import parse_instruction
from pmp_ros.objects3d import measure_objects, stack_points
from pmp_ros.ros.environment import configure_dds_environment, release_domains
from pmp_ros.ros.image_conversion import image_to_array
from pmp_ros.ros.live_view import live_frame
from pmp_ros.ros.node import DEFAULT_MODEL
from pmp_ros.ros.process import NodeProcess, pick_domains, user_domain
from pmp_ros.ros.stop_signals import Interrupted, stop_signals
from pmp_ros.viz.live_view import DEFAULT_PORT, LiveView
from pmp_ros.viz.overlay import NO_RESULT, Annotation, draw_overlay, write_gif

MIN_AREA = 150  # pixels: a target must be clearly visible for the demo
SEARCH_SEEDS = 2000
GIF_FPS = 10
CLOUD_VOXEL_M = 0.005  # the live view's object cloud, as the node's object_voxel_size default


def demo_scene(width: int, height: int) -> tuple[int, list[str]]:
    """(seed, instructions): the first test scene with a red star, two more seen classes and an unseen one,
    all clearly visible; the instructions name them in that order."""
    world = TabletopWorld(width, height, WorldConfig(num_objects=(6, 10)))
    for seed in splits.TEST[:SEARCH_SEEDS]:
        scene = world.render(seed)
        visible = sorted({o.class_name for o in scene.objects if o.visible_area >= MIN_AREA})
        unseen = [c for c in visible if vocabulary.is_unseen(c)]
        others = [c for c in visible if c != "red star" and not vocabulary.is_unseen(c)]
        if "red star" in visible and unseen and len(others) >= 2:
            return seed, [
                "pick up the red star",
                f"pick up the {others[0]} and the {others[1]}",
                f"find the {unseen[0]}",
            ]
    raise RuntimeError(f"no demo scene among the first {SEARCH_SEEDS} test seeds")


def _messages(frames: list[StreamFrame]):
    previous = None
    for frame in frames:
        for role, msgtype, data in frame_messages(frame, frame.instruction != previous):
            yield BagMessage(role, msgtype, frame.stamp_ns, data)
        previous = frame.instruction


def _picture(frame: StreamFrame, log: FrameLog) -> np.ndarray:
    """The result drawn as the node draws its overlay (viz/overlay.py: outlines, captions, cross-hairs),
    under a banner with the instruction and how the node resolved it."""
    if log.result is None:
        return draw_overlay(frame.rgb, np.zeros(frame.rgb.shape[:2], np.uint16), [], frame.instruction, NO_RESULT)
    label = np.asarray(image_to_array(log.result.label_image), np.uint16)
    points = {p.instance_id: (int(p.u), int(p.v)) for p in (log.points.points if log.points is not None else [])}
    annotations = [
        Annotation(int(i.id), i.label, float(i.score), int(i.track_id), points.get(i.id)) for i in log.result.instances
    ]
    return draw_overlay(frame.rgb, label, annotations, log.result.instruction, log.result.resolution)


def _stream_live(view: LiveView, frames: list[StreamFrame], log: FrameLog) -> None:
    """One answered frame to the live view, with its objects' points measured here from the frame's depth
    (the player does not collect the node's cloud) and the demo's own figures as diagnostics."""
    frame = frames[log.index]
    if log.result is None:
        return
    label = np.asarray(image_to_array(log.result.label_image), np.uint16)
    ids = [int(i.id) for i in log.result.instances]
    cloud = None
    if ids and frame.depth_mm is not None and frame.k is not None:
        measured = measure_objects(
            [label == i for i in ids],
            frame.depth_mm,
            frame.k,
            instance_ids=ids,
            cloud_rgb=frame.rgb,
            voxel_m=CLOUD_VOXEL_M,
        )
        cloud = stack_points(measured)
    live = live_frame(frame.rgb, log.result, log.points, log.objects, cloud)
    latency = log.latency_s
    view.publish(
        replace(
            live,
            diagnostics_message="pmp-demo",
            diagnostics={"frame": log.index, "latency_ms": f"{latency * 1e3:.1f}" if latency is not None else ""},
        )
    )


def _summary(frames: list[StreamFrame], logs: list[FrameLog], truths: dict) -> dict:
    """metrics.json content: per instruction and overall accuracy, latency, drops."""
    by_instruction: dict[str, list[dict]] = {}
    for frame, log in zip(frames, logs):
        truth = truths.get(log.key)
        if log.result is not None and truth is not None:
            record = instruction_frame_metrics(
                prediction_from_messages(log.result, log.points), truth_from_message(truth)
            )
            by_instruction.setdefault(frame.instruction, []).append(record)
    records = [r for rs in by_instruction.values() for r in rs]
    answered = [log.latency_s for log in logs if log.result is not None]
    return {
        "frames": len(logs),
        "results": len(answered),
        "dropped": len(logs) - len(answered),
        "overlays_from_node": sum(log.overlay is not None for log in logs),
        "latency_ms": latency_summary(answered),
        "overall": aggregate_instruction_metrics(records) if records else None,
        "per_instruction": {text: aggregate_instruction_metrics(rs)["all"] for text, rs in by_instruction.items()},
    }


def _report(summary: dict, seed: int, model: str, elapsed_s: float, startup_s: float) -> str:
    lat = summary["latency_ms"]
    lines = [
        "# pmp_ros demo",
        "",
        f"Scene seed {seed} (test split), model `{model}` on {summary['backend']}, {summary['frames']} frames in "
        f"lock-step, {summary['results']} results, {summary['dropped']} dropped. Run time {elapsed_s:.1f} s "
        f"(node startup {startup_s:.1f} s).",
        "",
        f"Latency (image published -> result received): p50 {format_value(lat['p50'], 1)} ms, "
        f"p90 {format_value(lat['p90'], 1)} ms.",
        "",
        "| instruction | precision | recall | F1 | mean target IoU | points inside target | 3D error median (m) |",
        "|---|---|---|---|---|---|---|",
    ]
    for text, s in summary["per_instruction"].items():
        lines.append(
            f"| {text} | {format_value(s['precision'])} | {format_value(s['recall'])} | {format_value(s['f1'])} | "
            f"{format_value(s['mean_target_iou'])} | {format_value(s['points_inside_share'])} | "
            f"{format_value(s['error_3d_m']['median'])} |"
        )
    lines += [
        "",
        "F1 at mask IoU 0.5 against the world's ground truth; the last instruction names a class held out "
        "of training (zero-shot). Overlays: `frames/`, animation: `demo.gif`, figures: `metrics.json`.",
        "",
    ]
    return "\n".join(lines)


def onnx_graph(model_path: Path, onnx_path: Path | None, out: Path) -> Path:
    """The graph the node runs with backend onnxruntime: onnx_path (which must exist), or else
    OUT/<model>.onnx, exported from model_path unless a graph exported from it is already there."""
    if onnx_path is not None:
        if not onnx_path.is_file():
            raise FileNotFoundError(f"ONNX graph not found: {onnx_path} (pmp-export-onnx, or leave out --onnx-path)")
        return onnx_path.resolve()
    cached = (out / model_path.name).with_suffix(".onnx").resolve()
    if not metadata.is_exported_from(cached, model_path):
        out.mkdir(parents=True, exist_ok=True)
        export_onnx(model_path, cached)
    return cached


def run_demo(
    out: Path,
    model: str | None,
    frames_per_instruction: int,
    width: int,
    height: int,
    device: str,
    backend: str = "torch",
    onnx_path: Path | None = None,
    foxglove_port: int | None = None,
    mcap_path: Path | None = None,
) -> dict:
    """Run the demo with the node's backend ("torch" or "onnxruntime": onnx_graph(model, onnx_path, out));
    returns metrics.json's content (with run_time_s). foxglove_port, mcap_path: stream each answered frame
    to a live view (viz/live_view.py) served on that port (0: any free one) and/or recorded there."""
    start = time.monotonic()
    model_path = Path(model).resolve() if model else paths.model_file(DEFAULT_MODEL)
    if not model_path.is_file():
        raise FileNotFoundError(f"model not found: {model_path} (pass --model PATH)")
    params = {"model_path": str(model_path), "device": device, "use_depth": True, "image_reliability": "reliable"}
    if backend == "onnxruntime":
        params |= {"backend": backend, "onnx_path": str(onnx_graph(model_path, onnx_path, out))}
    seed, instructions = demo_scene(width, height)
    cfg = SequenceConfig(
        width=width,
        height=height,
        seconds=len(instructions) * frames_per_instruction / 30.0,
        scene_seconds=1e9,
        instruction_seconds=frames_per_instruction / 30.0,
    )
    fixed = [(text, parse_instruction(text).targets) for text in instructions]
    frames = list(procedural_stream(cfg, seeds=[seed], instructions=fixed))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    configure_dds_environment()
    claimed = user_domain() is None  # else the user's domain: not ours to free
    domain = pick_domains(1)[0]
    out.mkdir(parents=True, exist_ok=True)
    view = None
    if foxglove_port is not None or mcap_path is not None:
        view = LiveView(port=foxglove_port, mcap_path=mcap_path, name="pmp-demo")
        if view.port is not None:
            print(f"pmp-demo: live view on ws://localhost:{view.port} (layout: config/foxglove_layout.json)")
    try:
        with (
            NodeProcess(params, domain, out / "node.log") as node,
            Player(domain, overlay=True, objects=view is not None) as player,
        ):
            startup_s = node.wait_ready()
            player.wait_for_node()
            on_frame = (lambda log: _stream_live(view, frames, log)) if view is not None else None
            playback = player.play(_messages(frames), lockstep=True, on_frame=on_frame)
    finally:
        if claimed:
            release_domains([domain])
        if view is not None:
            view.close()
    (out / "frames").mkdir(exist_ok=True)
    pictures = [_picture(frame, log) for frame, log in zip(frames, playback.frames)]
    for index, picture in enumerate(pictures):
        cv2.imwrite(str(out / "frames" / f"{index:04d}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    write_gif(out / "demo.gif", pictures, GIF_FPS)
    summary = _summary(frames, playback.frames, playback.truths)
    summary.update(
        seed=seed,
        model=str(model_path),
        backend=backend,
        onnx_path=params.get("onnx_path"),
        mcap=str(mcap_path) if mcap_path is not None else None,
        instructions=instructions,
        run_time_s=time.monotonic() - start,
        node_startup_s=startup_s,
    )
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(_report(summary, seed, model_path.name, summary["run_time_s"], startup_s))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Console entry pmp-demo. Exit code 0, 1 with one line when it cannot run, 128 + the signal number when
    stopped by SIGINT or SIGTERM (the node it started is stopped first)."""
    parser = argparse.ArgumentParser(
        prog="pmp-demo", description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", help="checkpoint (default: the shipped models/pmp_default.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--frames-per-instruction", type=int, default=10)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--device", default="auto", help="node parameter device (auto, cpu, cuda)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch", help="node parameter backend")
    parser.add_argument(
        "--onnx-path",
        type=Path,
        help="with --backend onnxruntime: the graph pmp-export-onnx wrote from --model (default: export it into --out)",
    )
    parser.add_argument(
        "--foxglove",
        type=int,
        nargs="?",
        const=DEFAULT_PORT,
        metavar="PORT",
        help=f"serve the live view to Foxglove on this port (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument("--mcap", type=Path, metavar="FILE", help="record the live view's channels to this .mcap")
    args = parser.parse_args(argv)
    if args.onnx_path is not None and args.backend != "onnxruntime":
        parser.error("--onnx-path goes with --backend onnxruntime")
    try:
        with stop_signals():
            summary = run_demo(
                args.out,
                args.model,
                args.frames_per_instruction,
                args.width,
                args.height,
                args.device,
                args.backend,
                args.onnx_path,
                args.foxglove,
                args.mcap,
            )
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        print(f"pmp-demo: {error}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        print(f"pmp-demo: {stop}; the node it started is stopped", file=sys.stderr)
        return stop.exit_code
    overall = summary["overall"]["all"] if summary["overall"] else {}
    print(
        f"pmp-demo: {summary['results']}/{summary['frames']} frames answered in {summary['run_time_s']:.1f} s; "
        f"instruction F1 {format_value(overall.get('f1'))}, "
        f"points inside target {format_value(overall.get('points_inside_share'))}, "
        f"latency p50 {summary['latency_ms']['p50'] or 0:.1f} ms"
    )
    for text, s in summary["per_instruction"].items():
        print(f"  {text!r}: F1 {format_value(s['f1'])}")
    print(f"wrote {args.out}/report.md, metrics.json, demo.gif and frames/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
