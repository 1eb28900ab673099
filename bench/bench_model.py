"""Raw model speed on the CPU: Predictor.predict on one frame, as the node calls it.

    python bench/bench_model.py --random-model --iterations 50            # or --model PATH
    python bench/bench_model.py --random-model --iterations 3 --warmup 1  # smoke run (seconds)

Prints the parameter count per module, the per-frame time (p50/p95/IQR/min/max) at each camera size
(the model input is resized to --inference-size, the node's inference_width x inference_height), that
time split into stages (preprocess / backbone / head / ensemble / post-processing, from forward hooks:
exact on the CPU, where torch runs synchronously), and the text cost per instruction of 1, 5 and 20
prompts: the text tower runs in set_prompts only, never per frame (its call counter stays put).
--profile adds torch.profiler's top operators of a few frames.
"""

from __future__ import annotations

import argparse
import time

import torch

import benchlib

PROMPT_COUNTS = (1, 5, 20)


class StageTimer:
    """Wall-clock stages of Predictor.predict calls, from forward hooks on the segmenter and its parts."""

    STAGES = ("preprocess", "backbone", "head", "ensemble", "postprocess", "total")

    def __init__(self, segmenter: torch.nn.Module) -> None:
        self.marks: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {stage: [] for stage in self.STAGES}
        for name, module in (("model", segmenter), ("backbone", segmenter.backbone), ("head", segmenter.head)):
            module.register_forward_pre_hook(lambda *_, key=name + "_start": self._mark(key))
            module.register_forward_hook(lambda *_, key=name + "_end": self._mark(key))

    def _mark(self, key: str) -> None:
        self.marks[key] = time.perf_counter()

    def run(self, fn) -> None:
        """Call fn() (one predict) and record its stages."""
        start = time.perf_counter()
        fn()
        end = time.perf_counter()
        m = self.marks
        stages = {
            "preprocess": m["backbone_start"] - start,
            "backbone": m["backbone_end"] - m["backbone_start"],
            "head": m["head_end"] - m["head_start"],
            "ensemble": m["model_end"] - m["head_end"],
            "postprocess": end - m["model_end"],
            "total": end - start,
        }
        for stage, seconds in stages.items():
            self.samples[stage].append(seconds)


def parameter_counts(segmenter: torch.nn.Module) -> list[dict]:
    """Parameters per module (each counted once; 'other' = the void embedding and anything unlisted)."""
    pmp = list(segmenter.head.pmp_parameters())
    pmp_ids = {id(p) for p in pmp}
    groups = {
        "backbone (CLIP image tower)": list(segmenter.backbone.parameters()),
        "text tower (CLIP)": list(segmenter.text_encoder.parameters()),
        "pixel decoder": list(segmenter.head.pixel_decoder.parameters()),
        "transformer decoder (without PMP)": [p for p in segmenter.head.predictor.parameters() if id(p) not in pmp_ids],
        "PMP prompt-attention layers": pmp,
        "side adapter": list(segmenter.side_adapter.parameters()) if segmenter.side_adapter else [],
        "crop tower (the crop classifier's image tower)": (
            list(segmenter.crop_backbone.parameters()) if segmenter.crop_backbone else []
        ),
    }
    seen: set[int] = set()
    rows = []
    for name, params in groups.items():
        unique = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in unique)
        rows.append({"module": name, "parameters": sum(p.numel() for p in unique)})
    everything = {id(p): p for p in segmenter.parameters()}
    rows.append({"module": "other", "parameters": sum(p.numel() for i, p in everything.items() if i not in seen)})
    rows.append({"module": "total", "parameters": sum(p.numel() for p in everything.values())})
    return rows


def frame_times(predictor, sizes, iterations: int, warmup: int) -> list[dict]:
    timer = StageTimer(predictor.segmenter)
    rows = []
    for width, height in sizes:
        image = benchlib.scene_image(width, height)
        if warmup:
            benchlib.warm_up(lambda: predictor.predict([image], semantic=False), warmup)
        timer.samples = {stage: [] for stage in StageTimer.STAGES}
        for _ in range(iterations):
            timer.run(lambda: predictor.predict([image], semantic=False))
        for stage in StageTimer.STAGES:
            rows.append({"image": f"{width}x{height}", "stage": stage, **benchlib.summary_ms(timer.samples[stage])})
    return rows


def text_costs(predictor, context, iterations: int, warmup: int) -> list[dict]:
    """Per prompt count: set_prompts uncached and cached, frame time, text tower calls during the frames."""
    from pmp_ros.data.vocabulary import all_classes

    encoder = predictor.segmenter.text_encoder
    height, width = predictor.cfg.size
    image = benchlib.scene_image(width, height)
    rows = []
    for count in PROMPT_COUNTS:
        prompts = all_classes()[:count]
        encoder.clear_cache()
        start = time.perf_counter()
        predictor.set_prompts(prompts, context)
        uncached = time.perf_counter() - start
        start = time.perf_counter()
        predictor.set_prompts(prompts, context)
        cached = time.perf_counter() - start
        calls = encoder.tower_calls
        frames = benchlib.time_calls(lambda: predictor.predict([image], semantic=False), iterations, warmup)
        rows.append(
            {
                "prompts": count,
                "classes": len(predictor.class_names),
                "encode_ms": uncached * 1e3,
                "encode_cached_ms": cached * 1e3,
                "tower_calls": encoder.tower_calls - calls,
                **benchlib.summary_ms(frames),
            }
        )
    return rows


def profile_top_ops(predictor, iterations: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    height, width = predictor.cfg.size
    image = benchlib.scene_image(width, height)
    predictor.predict([image], semantic=False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iterations):
            predictor.predict([image], semantic=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benchlib.add_common_args(parser)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sizes", default="320x240,640x480", help="camera image sizes, comma separated")
    parser.add_argument("--inference-size", default="320x240", help="model input WxH (the node's default)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators")
    args = parser.parse_args()

    threads = benchlib.set_threads(args.threads)
    width, height = benchlib.parse_size(args.inference_size)
    predictor, cfg, description = benchlib.load_predictor(args, (height, width))
    context = tuple(cfg.train_classes)
    predictor.set_prompts(("red star",), context)
    info = benchlib.machine({"model": description, "inference_size": args.inference_size, "threads": threads})
    benchlib.print_machine(info)

    params = parameter_counts(predictor.segmenter)
    benchlib.print_table(
        "parameters per module", params, [("module", "module", "s"), ("parameters", "parameters", ",d")]
    )
    sizes = [benchlib.parse_size(s) for s in args.sizes.split(",")]
    frames = frame_times(predictor, sizes, args.iterations, args.warmup)
    benchlib.print_table(
        f"Predictor.predict, one frame, 1 prompt + {len(context)} context classes (model input {args.inference_size})",
        frames,
        [("image", "image", "s"), ("stage", "stage", "s"), *benchlib.STAT_COLUMNS],
    )
    text = text_costs(predictor, context, args.iterations, args.warmup)
    benchlib.print_table(
        "text: encoded once per instruction (set_prompts), frames reuse it",
        text,
        [
            ("prompts", "prompts", "d"),
            ("classes", "classes", "d"),
            ("encode_ms", "encode ms", ".1f"),
            ("encode_cached_ms", "cached ms", ".2f"),
            ("tower_calls", "tower calls in frames", "d"),
            *benchlib.STAT_COLUMNS,
        ],
    )
    if args.profile:
        predictor.set_prompts(("red star",), context)
        print("\ntorch.profiler, top operators by self CPU time:\n" + profile_top_ops(predictor, args.iterations))
    benchlib.write_json(
        args.json, {"benchmark": "bench_model", "machine": info, "parameters": params, "frames": frames, "text": text}
    )


if __name__ == "__main__":
    main()
