"""Shared pieces of the benchmark scripts: the model under test, timing statistics, the machine, output.

Every script prints its figures with the machine they were measured on (CPU model, cores, torch version,
threads, load average, date) and can write the same as JSON (--json out.json). The model is the shipped
models/pmp_default.safetensors, another checkpoint (--model PATH), or the architecture of
config/train/pmp_tiny.yaml with random weights (--random-model): timing is the same as for trained weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "config" / "train" / "pmp_tiny.yaml"
DEFAULT_MODEL = REPO / "models" / "pmp_default.safetensors"
SIZES = ((320, 240), (640, 480))  # camera image sizes (width, height) the node benchmarks use


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--model / --random-model, --threads (as the node's cpu_threads), --json."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", type=Path, help=f"checkpoint (default {DEFAULT_MODEL.relative_to(REPO)})")
    group.add_argument(
        "--random-model", action="store_true", help="the pmp_tiny.yaml architecture with random weights (same timing)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads, like the node's cpu_threads (0 = torch's default)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")


def parse_size(text: str) -> tuple[int, int]:
    """ "320x240" -> (320, 240) (width, height)."""
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def tiny_config():
    """ModelConfig of config/train/pmp_tiny.yaml as trained: CLIP weights from the checkpoint, the seen
    classes of the vocabulary as training classes (the node's default context vocabulary)."""
    import yaml

    from pmp_ros.data.vocabulary import seen_classes
    from pmp_ros.model.config import ModelConfig

    cfg = ModelConfig.from_dict(yaml.safe_load(TINY_CONFIG.read_text())["model"])
    cfg.clip.pretrained = None
    cfg.train_classes = seen_classes()
    return cfg


def random_segmenter(seed: int = 0):
    """(PMPSegmenter with random weights in eval mode, its ModelConfig) of the pmp_tiny architecture."""
    import torch

    from pmp_ros.model.segmenter import build_segmenter

    cfg = tiny_config()
    torch.manual_seed(seed)
    return build_segmenter(cfg).eval(), cfg


def model_path(args: argparse.Namespace, folder: Path) -> tuple[Path, str]:
    """(checkpoint file, description) for a node: --model, the shipped model, or a random pmp_tiny
    checkpoint written into `folder`."""
    if args.random_model:
        from pmp_ros.model.checkpoint import save_checkpoint

        model, cfg = random_segmenter()
        path = save_checkpoint(folder / "random_pmp_tiny.safetensors", model, cfg)
        return Path(path), "random weights, config/train/pmp_tiny.yaml architecture"
    path = args.model or DEFAULT_MODEL
    if not path.is_file():
        raise SystemExit(f"model file not found: {path} (pass --model PATH or --random-model)")
    return path, str(path)


def load_predictor(args: argparse.Namespace, size: tuple[int, int], device: str = "cpu", precision: str = "fp32"):
    """(Predictor, ModelConfig, description) of the selected model; size: model input (height, width)."""
    from dataclasses import replace

    from pmp_ros.model.inference import Predictor

    if args.random_model:
        segmenter, cfg = random_segmenter()
        return (
            Predictor(segmenter, replace(cfg.inference, size=size), device, precision),
            cfg,
            "random weights, config/train/pmp_tiny.yaml architecture",
        )
    path = args.model or DEFAULT_MODEL
    if not path.is_file():
        raise SystemExit(f"model file not found: {path} (pass --model PATH or --random-model)")
    predictor, cfg = Predictor.from_checkpoint(path, device, precision, size=size)
    return predictor, cfg, str(path)


def set_threads(threads: int) -> int:
    """Apply --threads the way the node applies cpu_threads; returns the threads torch uses."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def scene_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A procedural tabletop frame, uint8 [H,W,3] RGB (content does not change the timing)."""
    from pmp_ros.data.world import TabletopWorld

    return TabletopWorld(width, height).render(seed).rgb


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    """n, median, p95, IQR (spread), min, max in milliseconds of durations in seconds."""
    if not samples_s:
        return {"n": 0}
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    q25, q75 = np.percentile(ms, [25, 75])
    return {
        "n": int(ms.size),
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "iqr_ms": float(q75 - q25),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def warm_up(fn, calls: int, limit: int = 30) -> int:
    """Untimed calls of fn(): at least `calls`, then until one is within 25 % of the fastest so far (the
    first few forwards in a fresh process took seconds on the CPU), at most `limit`. Returns the count."""
    fastest, done = float("inf"), 0
    while done < limit:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
        done += 1
        if done >= calls and seconds <= 1.25 * fastest:
            break
        fastest = min(fastest, seconds)
    return done


def time_calls(fn, iterations: int, warmup: int) -> list[float]:
    """Wall-clock seconds of `iterations` calls of fn() after warm_up(fn, warmup)."""
    if warmup:
        warm_up(fn, warmup)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def machine(extra: dict | None = None) -> dict:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def print_machine(info: dict) -> None:
    print("machine: " + ", ".join(f"{key}={value}" for key, value in info.items()))


def print_table(title: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """rows of dicts; columns: (key, header, format spec). Missing values print as '-'."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([format(row[key], spec) if row.get(key) is not None else "-" for key, _, spec in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for i, line in enumerate(cells):
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if i == 0:
            print("  " + "  ".join("-" * width for width in widths))


STAT_COLUMNS = [
    ("median_ms", "p50 ms", ".1f"),
    ("p95_ms", "p95 ms", ".1f"),
    ("iqr_ms", "IQR ms", ".1f"),
    ("min_ms", "min ms", ".1f"),
    ("max_ms", "max ms", ".1f"),
    ("n", "n", "d"),
]


def write_json(path: Path | None, payload: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {path}")


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
