"""Where a PMP training step's time goes: data, text, frozen CLIP tower, side adapter, pixel decoder,
query decoder, loss, backward, optimiser.

Usage: python bench/profile_training.py [--config config/train/pmp_prompted.yaml] [--steps 30] [--threads 1]
       [--set train.precision=bf16 ...]

Times are CPU seconds of the training thread (time.thread_time, so other processes on a shared machine
count less than in wall time; they still share caches and memory bandwidth: say the machine's load with
the figures). Forward phases are timed by module hooks; backward and the optimiser step as wholes. The
first `--warmup` steps are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from pmp_ros.model.criterion import SetCriterion
from pmp_ros.model.segmenter import build_segmenter
from pmp_ros.train.train_pmp import WorldBatches, apply_overrides, float_outputs, forward_precision, load_config

import benchlib


class PhaseClock:
    """Thread CPU time per named phase; modules are timed by forward pre/post hooks."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(list)
        self._current: dict[str, float] = defaultdict(float)
        self._started: dict[str, float] = {}

    def watch(self, name: str, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(lambda *_: self._started.__setitem__(name, time.thread_time()))
        module.register_forward_hook(lambda *_: self._stop(name))

    def _stop(self, name: str) -> None:
        self._current[name] += time.thread_time() - self._started.pop(name)

    def timed(self, name: str, fn, *args):
        start = time.thread_time()
        result = fn(*args)
        self._current[name] += time.thread_time() - start
        return result

    def end_step(self, keep: bool) -> None:
        if keep:
            for name, seconds in self._current.items():
                self.totals[name].append(seconds)
        self._current.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=benchlib.REPO / "config/train/pmp_prompted.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, as pmp-train --set")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_cfg, cfg = apply_overrides(*load_config(args.config), args.set)
    data = WorldBatches(cfg, model_cfg.decoder.num_queries, 0, 1)
    model_cfg.train_classes = data.classes
    model = build_segmenter(model_cfg).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    criterion = SetCriterion.from_config(model_cfg.loss)
    clock = PhaseClock()
    clock.watch("clip tower (frozen)", model.backbone)
    if model.side_adapter is not None:
        clock.watch("side adapter", model.side_adapter)
    clock.watch("pixel decoder", model.head.pixel_decoder)
    clock.watch("query decoder", model.head.predictor)
    class_names = list(data.classes)
    step_totals = []
    for step in range(args.warmup + args.steps):
        start = time.thread_time()
        images, targets, prompts = clock.timed("data (render scenes)", data.batch, step)
        with forward_precision(cfg, torch.device("cpu")):
            text = clock.timed("text tower", model.encode_text, class_names, prompts)
            outputs = clock.timed("forward (all)", model, images, text)
        losses = clock.timed("loss (matching + losses)", criterion, float_outputs(outputs), targets)
        total = criterion.weighted_total(losses)
        optimizer.zero_grad(set_to_none=True)
        clock.timed("backward", total.backward)
        clock.timed("optimiser", optimizer.step)
        keep = step >= args.warmup
        if keep:
            step_totals.append(time.thread_time() - start)
        clock.end_step(keep)
    step_median = statistics.median(step_totals)
    rows = []
    for name, samples in clock.totals.items():
        median = statistics.median(samples)
        rows.append({"phase": name, "median_ms": 1000 * median, "share": median / step_median})
    rows.append({"phase": "step (CPU of this thread)", "median_ms": 1000 * step_median, "share": 1.0})
    info = benchlib.machine({"config": str(args.config), "overrides": args.set, "steps": args.steps})
    benchlib.print_machine(info)
    print("(forward (all) contains the four module rows above it and the ensemble-free rest of the head)")
    benchlib.print_table(
        "training step",
        rows,
        [("phase", "phase", "s"), ("median_ms", "median ms", ".1f"), ("share", "share of step", ".0%")],
    )
    print(f"steps per CPU second of one thread: {1 / step_median:.2f}")
    benchlib.write_json(args.json, {"machine": info, "phases": rows, "steps_per_cpu_second": 1 / step_median})


if __name__ == "__main__":
    main()
