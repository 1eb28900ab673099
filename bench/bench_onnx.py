"""ONNX Runtime against eager PyTorch per frame on the CPU, in the same run (docs/deployment.md).

    python bench/bench_onnx.py --threads 1 --iterations 30        # the shipped model, 320x240 and 640x480
    python bench/bench_onnx.py --random-model --iterations 3 --warmup 1 --sizes 320x240   # smoke run
    python bench/bench_onnx.py --threads 1 --profile              # + both backends' top operators

For each size the model input is that size: a graph is exported per size (pmp-export-onnx --height
--width) into --onnx-dir and reused there on later runs. Both backends are model/inference.Predictor (the
ONNX one from deploy/runtime.load_onnx_predictor), prompted with one class and the seen classes as context
as the node is, on the world's scene at that size; their calls alternate, so both see the same machine
load. Per backend: "frame" is Predictor.predict on one frame as the node calls it (preprocessing, model,
post-processing), "model" Predictor.forward (the same preprocessing, then PMPSegmenter's forward or the ONNX
Runtime run). Prints medians, the PyTorch / ONNX Runtime ratio and the load average before and after.
--profile adds ONNX Runtime's profile (SessionOptions.enable_profiling: time per operator type) and
torch.profiler's top operators, to explain the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import benchlib

BACKENDS = ("pytorch", "onnxruntime")


def onnx_graph(checkpoint: Path, folder: Path, size: tuple[int, int]) -> Path:
    """The graph of checkpoint at size (H, W) in folder: exported unless a graph for this checkpoint is there."""
    from pmp_ros.deploy import metadata
    from pmp_ros.deploy.export import export_onnx

    path = folder / f"{checkpoint.stem}_{metadata.format_size(size)}.onnx"
    if metadata.is_exported_from(path, checkpoint):
        return path
    result = export_onnx(checkpoint, path, size)
    print(f"exported {path} in {result.seconds:.0f} s (max |ONNX Runtime - PyTorch| {result.max_abs_difference})")
    return path


def model_call(predictor, image, text):
    """Predictor.forward on one frame: the shared preprocessing, then the image path (segmenter or graph)."""
    return lambda: predictor.forward([image], text)


def alternate(calls: dict[tuple[str, str], Callable[[], object]], iterations: int, warmup: int) -> dict:
    """Seconds per call of each named function, the functions called in turn each iteration."""
    for fn in calls.values():
        benchlib.warm_up(fn, warmup)
    samples = {name: [] for name in calls}
    for _ in range(iterations):
        for name, fn in calls.items():
            samples[name] += benchlib.time_calls(fn, 1, 0)
    return samples


def onnxruntime_profile(checkpoint: Path, onnx_path: Path, image, prompts, context, threads: int, frames: int):
    """Per operator type: ms per frame in ONNX Runtime's own profile (enable_profiling) of `frames` frames."""
    from pmp_ros.deploy.runtime import load_onnx_predictor

    prefix = Path(tempfile.gettempdir()) / "pmp_onnx_profile"
    predictor, _ = load_onnx_predictor(checkpoint, onnx_path, "cpu", threads=threads, profile_prefix=prefix)
    predictor.set_prompts(prompts, context)
    for _ in range(frames):
        predictor.predict([image], semantic=False)
    trace_path = Path(predictor.segmenter.session.end_profiling())
    trace = json.loads(trace_path.read_text())
    trace_path.unlink()
    runs = sum(1 for event in trace if event.get("cat") == "Session" and event["name"] == "model_run")
    per_op: dict[str, float] = defaultdict(float)
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / runs
    total = sum(per_op.values())
    return [
        {"operator": op, "ms_per_frame": ms, "share": ms / total}
        for op, ms in sorted(per_op.items(), key=lambda item: -item[1])[:15]
    ]


def torch_top_operators(predictor, image, frames: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    predictor.predict([image], semantic=False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(frames):
            predictor.predict([image], semantic=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benchlib.add_common_args(parser)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sizes", default="320x240,640x480", help="frame = model input sizes WxH, comma separated")
    parser.add_argument("--onnx-dir", type=Path, help="where graphs are exported and reused (default: a temp folder)")
    parser.add_argument("--profile", action="store_true", help="print both backends' top operators")
    args = parser.parse_args()

    import onnxruntime

    from pmp_ros.data.vocabulary import seen_classes
    from pmp_ros.deploy.runtime import load_onnx_predictor
    from pmp_ros.model.inference import Predictor

    threads = benchlib.set_threads(args.threads)

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.onnx_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint, description = benchlib.model_path(args, folder)
        info = benchlib.machine(
            {"model": description, "threads": threads, "onnxruntime": onnxruntime.__version__, "provider": "CPU"}
        )
        prompts, context = ("red star",), seen_classes()
        rows, profiles = [], []
        for width, height in (benchlib.parse_size(s) for s in args.sizes.split(",")):
            onnx_path = onnx_graph(checkpoint, folder, (height, width))
            predictors = {
                "pytorch": Predictor.from_checkpoint(checkpoint, "cpu", "fp32", size=(height, width))[0],
                "onnxruntime": load_onnx_predictor(checkpoint, onnx_path, "cpu", threads=threads)[0],
            }
            image = benchlib.scene_image(width, height)
            calls = {}
            for backend, predictor in predictors.items():
                predictor.set_prompts(prompts, context)
                calls[(backend, "frame")] = lambda p=predictor: p.predict([image], semantic=False)
                calls[(backend, "model")] = model_call(
                    predictor, image, predictor.encode_text(prompts + context, prompts)
                )
            samples = alternate(calls, args.iterations, args.warmup)
            for (backend, stage), seconds in samples.items():
                rows.append(
                    {"image": f"{width}x{height}", "backend": backend, "stage": stage} | benchlib.summary_ms(seconds)
                )
            if args.profile:
                profiles.append(
                    {
                        "image": f"{width}x{height}",
                        "onnxruntime": onnxruntime_profile(
                            checkpoint, onnx_path, image, prompts, context, threads, args.iterations
                        ),
                        "pytorch": torch_top_operators(predictors["pytorch"], image, args.iterations),
                    }
                )
        info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        benchlib.print_machine(info)
        benchlib.print_table(
            f"one frame, 1 prompt + {len(context)} context classes, model input = frame size",
            rows,
            [("image", "image", "s"), ("backend", "backend", "s"), ("stage", "stage", "s"), *benchlib.STAT_COLUMNS],
        )
        ratios = speedups(rows)
        benchlib.print_table(
            "PyTorch median / ONNX Runtime median (> 1: ONNX Runtime faster)",
            ratios,
            [("image", "image", "s"), ("stage", "stage", "s"), ("ratio", "ratio", ".2f")],
        )
        for profile in profiles:
            benchlib.print_table(
                f"ONNX Runtime profile, {profile['image']}: top operator types",
                profile["onnxruntime"],
                [("operator", "operator", "s"), ("ms_per_frame", "ms/frame", ".2f"), ("share", "share", ".1%")],
            )
            print(f"\ntorch.profiler, {profile['image']}, top operators by self CPU time:\n{profile['pytorch']}")
        benchlib.write_json(
            args.json,
            {
                "benchmark": "bench_onnx",
                "machine": info,
                "frames": rows,
                "ratios": ratios,
                "onnxruntime_profiles": [{k: v for k, v in p.items() if k != "pytorch"} for p in profiles],
            },
        )


def speedups(rows: list[dict]) -> list[dict]:
    """Per image size and stage: PyTorch median / ONNX Runtime median."""
    medians = {(row["image"], row["stage"], row["backend"]): row["median_ms"] for row in rows}
    keys = dict.fromkeys((image, stage) for image, stage, _ in medians)
    return [
        {
            "image": image,
            "stage": stage,
            "ratio": medians[(image, stage, "pytorch")] / medians[(image, stage, "onnxruntime")],
        }
        for image, stage in keys
    ]


if __name__ == "__main__":
    main()
