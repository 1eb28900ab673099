"""pmp-demo: the whole system in one command, nothing to set up.

    pmp-demo                      # shipped model, output in demo_out/
    pmp-demo --model my.safetensors --out /tmp/demo
    pmp-demo --backend onnxruntime [--onnx-path model.onnx]   # the node on ONNX Runtime (docs/deployment.md)

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
from pmp_ros.eval.frame_metrics import aggregate_instruction_metrics, instruction_frame_metrics
from pmp_ros.eval.report import format_value, latency_summary
from pmp_ros.language.parse import parse_instruction
from pmp_ros.ros.environment import configure_dds_environment
from pmp_ros.ros.image_conversion import image_to_rgb8
from pmp_ros.ros.messages import instance_colour
from pmp_ros.ros.node import DEFAULT_MODEL
from pmp_ros.ros.process import NodeProcess, pick_domains
from pmp_ros.ros.stop_signals import Interrupted, stop_signals

MIN_AREA = 150  # pixels: a target must be clearly visible for the demo
SEARCH_SEEDS = 2000


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
    """The node's overlay (or, if it did not arrive, the result's masks blended here) with the instruction
    written on a banner above it."""
    if log.overlay is not None:
        image = np.array(image_to_rgb8(log.overlay))
    else:
        image = frame.rgb.copy()
        if log.result is not None:
            label = prediction_from_messages(log.result, None).label_image
            for instance in log.result.instances:
                mask = label == instance.id
                image[mask] = (0.5 * image[mask] + 0.5 * np.array(instance_colour(instance.id))).astype(np.uint8)
    banner = np.full((22, image.shape[1], 3), 30, np.uint8)
    text = frame.instruction if log.result is not None else frame.instruction + " (no result)"
    cv2.putText(banner, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([banner, image])


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
) -> dict:
    """Run the demo with the node's backend ("torch" or "onnxruntime": onnx_graph(model, onnx_path, out));
    returns metrics.json's content (with run_time_s)."""
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
    domain = pick_domains(1)[0]
    out.mkdir(parents=True, exist_ok=True)
    with NodeProcess(params, domain, out / "node.log") as node, Player(domain, overlay=True) as player:
        startup_s = node.wait_ready()
        player.wait_for_node()
        playback = player.play(_messages(frames), lockstep=True)
    (out / "frames").mkdir(exist_ok=True)
    pictures = [_picture(frame, log) for frame, log in zip(frames, playback.frames)]
    for index, picture in enumerate(pictures):
        cv2.imwrite(str(out / "frames" / f"{index:04d}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    import imageio.v2 as imageio

    imageio.mimsave(out / "demo.gif", pictures, duration=1 / 10, loop=0)
    summary = _summary(frames, playback.frames, playback.truths)
    summary.update(
        seed=seed,
        model=str(model_path),
        backend=backend,
        onnx_path=params.get("onnx_path"),
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
