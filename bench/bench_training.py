"""Training throughput of the real `pmp-train` loop: steps per second of each way to use the machine.

Usage: python bench/bench_training.py [--steps 40] [--warmup 10] [--layouts 1x1:fp32 1x2:fp32 2x1:fp32 ...]
                                      [--json out.json]

A layout is RUNSxTHREADS:PRECISION[:wWORKERS]: RUNS concurrent `pmp-train` processes, each with THREADS
torch threads, train.precision PRECISION and train.data_workers WORKERS (default 0). Each run trains
warmup + steps steps of the ablation's PMP recipe (config/train/pmp_prompted.yaml, objective weighted, the
shipped CLIP) in a temporary folder; its speed is steps / wall time between the end of step `warmup` and
the last step (log.jsonl's time_s, 0.1 s resolution). The machine's throughput is the sum over the
concurrent runs. Run it on a quiet machine: every core is used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib

CONFIG = benchlib.REPO / "config" / "train" / "pmp_prompted.yaml"
CLIP = benchlib.REPO / "models" / "pmp-tiny-rn-clip.safetensors"
DEFAULT_LAYOUTS = ("1x1:fp32", "1x2:fp32", "2x1:fp32", "1x1:fp32:w1", "1x1:bf16", "1x2:bf16", "2x1:bf16")


def parse_layout(text: str) -> dict:
    """ "2x1:bf16:w1" -> {"runs": 2, "threads": 1, "precision": "bf16", "data_workers": 1}."""
    shape, precision, *rest = text.split(":")
    runs, threads = (int(part) for part in shape.split("x"))
    workers = int(rest[0].removeprefix("w")) if rest else 0
    return {"layout": text, "runs": runs, "threads": threads, "precision": precision, "data_workers": workers}


def run_layout(layout: dict, steps: int, warmup: int, folder: Path) -> dict:
    """Start the layout's runs together, wait for them; per-run and summed steps per second."""
    processes = []
    for index in range(layout["runs"]):
        out = folder / f"{layout['layout'].replace(':', '_')}_{index}"
        command = [
            sys.executable,
            "-m",
            "pmp_ros.train.train_pmp",
            "--config",
            str(CONFIG),
            "--out",
            str(out),
            "--set",
            f"model.clip.pretrained={CLIP}",
            "train.objective=weighted",
            f"train.seed={index}",
            f"train.steps={warmup + steps}",
            f"train.threads={layout['threads']}",
            f"train.precision={layout['precision']}",
            f"train.data_workers={layout['data_workers']}",
            "train.log_every=1",
            f"train.checkpoint_every={10 * (warmup + steps)}",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(layout["threads"]), "HF_HUB_OFFLINE": "1"}
        processes.append((out, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    per_run = []
    for out, process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{layout['layout']}: pmp-train failed:\n{stderr.decode()[-2000:]}")
        times = {r["step"]: r["time_s"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())}
        per_run.append(steps / (times[warmup + steps - 1] - times[warmup - 1]))
    return {**layout, "steps_per_s_each": per_run, "steps_per_s": sum(per_run)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps per run")
    parser.add_argument("--layouts", nargs="+", default=list(DEFAULT_LAYOUTS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.warmup < 1:
        raise SystemExit("--warmup must be at least 1 (the timing starts at the end of step warmup - 1)")
    info = benchlib.machine({"config": str(CONFIG), "steps": args.steps, "warmup": args.warmup})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_training_") as folder:
        for text in args.layouts:
            rows.append(run_layout(parse_layout(text), args.steps, args.warmup, Path(folder)))
            print(f"{text}: {rows[-1]['steps_per_s']:.2f} steps/s", flush=True)
    base = rows[0]["steps_per_s"]
    for row in rows:
        row["vs_first"] = row["steps_per_s"] / base
        row["each"] = " / ".join(f"{value:.2f}" for value in row["steps_per_s_each"])
    benchlib.print_machine(info)
    benchlib.print_table(
        "training throughput (the machine's steps per second, summed over concurrent runs)",
        rows,
        [
            ("layout", "runs x threads : precision [: data workers]", "s"),
            ("each", "steps/s of each run", "s"),
            ("steps_per_s", "steps/s", ".2f"),
            ("vs_first", f"x {rows[0]['layout']}", ".2f"),
        ],
    )
    benchlib.write_json(args.json, {"machine": info, "layouts": rows})


if __name__ == "__main__":
    main()
