"""The model on a CUDA GPU: precision x execution mode x image size x batch, in one run of < 8 minutes.

    python bench/gpu_bench.py --random-model --compile --cuda-graphs --json gpu.json
    python bench/gpu_bench.py --random-model --device cpu --sizes 320x240 --batches 1 --iterations 2  # smoke

Per configuration: the segmenter forward (model input = the image size, as with inference_width/height set
to it) in fp32, bf16 and fp16 autocast; eager, torch.compile (--compile) and a captured CUDA graph
(--cuda-graphs, eager model replayed); batch 1 and 4. Each call is timed to completion (synchronised):
p50/p95/IQR in ms, images/s at p50, peak GPU memory. Eager rows also time the whole Predictor.predict
(uint8 frames from the host, post-processing, one copy back). Configurations that would start after
--budget-s seconds are skipped and listed, so the run stays inside a lent machine's time.
Without a CUDA device it prints "no CUDA device: nothing measured" and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext

import torch

import benchlib

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str, cache: bool = True):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision], cache_enabled=cache)


def timed(fn, device: torch.device, iterations: int, warmup: int) -> list[float]:
    """Seconds per call, each call waited for (the latency a frame sees)."""

    def call():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return benchlib.time_calls(call, iterations, warmup)


def graphed(forward, batch: torch.Tensor):
    """A callable replaying `forward(batch)` from a captured CUDA graph (the input copied in first)."""
    static = batch.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            forward(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward(static)

    def replay():
        static.copy_(batch)
        graph.replay()

    return replay


def measure(segmenter, text, predictor, args, device, precision: str, mode: str, size, batch: int) -> dict:
    width, height = size
    images = torch.rand(batch, 3, height, width, device=device)
    if mode == "compile":
        torch.compiler.reset()  # a fresh compilation per configuration, never the recompile limit
    model = torch.compile(segmenter) if mode == "compile" else segmenter
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward(x=images):
        with autocast(device, precision, cache=mode != "graphs"):
            return model(x, text)

    fn = graphed(forward, images) if mode == "graphs" else forward
    samples = timed(fn, device, args.iterations, args.warmup)
    row = {
        "precision": precision,
        "mode": mode,
        "size": f"{width}x{height}",
        "batch": batch,
        **benchlib.summary_ms(samples),
    }
    row["images_per_s"] = batch / (row["median_ms"] / 1e3)
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if mode == "eager":
        frames = [benchlib.scene_image(width, height, seed) for seed in range(batch)]
        predict = benchlib.summary_ms(timed(lambda: predictor.predict(frames), device, args.iterations, args.warmup))
        row["predict_p50_ms"], row["predict_p95_ms"] = predict["median_ms"], predict["p95_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benchlib.add_common_args(parser)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--sizes", default="320x240,640x480,1280x720")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows")
    parser.add_argument("--cuda-graphs", action="store_true", help="add captured CUDA graph rows")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no configuration after this")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return
    from dataclasses import replace

    from pmp_ros.language.parse import parse_instruction
    from pmp_ros.model.inference import Predictor

    started = time.monotonic()
    loader, cfg, description = benchlib.load_predictor(args, (240, 320), str(device), "fp32")
    segmenter = loader.segmenter
    prompts = parse_instruction("pick up the red star").targets
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU run)"
    info = benchlib.machine({"gpu": gpu, "cuda": torch.version.cuda, "model": description})
    benchlib.print_machine(info)
    precisions = [p for p in args.precisions.split(",") if p != "fp16" or device.type == "cuda"]
    sizes = [benchlib.parse_size(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    # Compilation is slow: every configuration runs eager (and graphed) first, compiled ones after.
    passes = [["eager"] + ["graphs"] * (args.cuda_graphs and device.type == "cuda"), ["compile"] * args.compile]
    rows, skipped = [], []
    for modes in passes:
        for precision in precisions:
            with torch.inference_mode(), autocast(device, precision):
                text = segmenter.encode_text(list(prompts) + list(cfg.train_classes), list(prompts))
            for width, height in sizes:
                predictor = Predictor(segmenter, replace(cfg.inference, size=(height, width)), str(device), precision)
                predictor.set_prompts(prompts, cfg.train_classes)
                for batch in batches:
                    for mode in modes:
                        config = f"{precision} {mode} {width}x{height} batch {batch}"
                        if time.monotonic() - started > args.budget_s:
                            skipped.append(f"{config}: time budget")
                            continue
                        try:
                            with torch.inference_mode():
                                rows.append(
                                    measure(
                                        segmenter,
                                        text,
                                        predictor,
                                        args,
                                        device,
                                        precision,
                                        mode,
                                        (width, height),
                                        batch,
                                    )
                                )
                            done = f"p50 {rows[-1]['median_ms']:.2f} ms"
                        except Exception as error:  # a mode that cannot run here is reported, not fatal
                            done = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
                            skipped.append(f"{config}: {done}")
                        # Progress with the figure, so a run cut short by its time limit still tells.
                        print(f"  {config}: {done} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    benchlib.print_table(
        f"segmenter forward on {gpu} (model input = image size)",
        rows,
        [
            ("precision", "prec", "s"),
            ("mode", "mode", "s"),
            ("size", "size", "s"),
            ("batch", "batch", "d"),
            *benchlib.STAT_COLUMNS[:3],
            ("images_per_s", "img/s", ".0f"),
            ("peak_mib", "peak MiB", ".0f"),
            ("predict_p50_ms", "predict p50", ".1f"),
            ("predict_p95_ms", "predict p95", ".1f"),
        ],
    )
    for line in skipped:
        print(f"  skipped: {line}")
    benchlib.write_json(args.json, {"benchmark": "gpu_bench", "machine": info, "rows": rows, "skipped": skipped})


if __name__ == "__main__":
    main()
