"""Where the node's per-frame time goes: py-spy samples the running node while frames stream in.

    .venv/bin/pip install py-spy     # once
    python bench/profile_node.py --random-model --duration 30 [--raw-out stacks.txt]

Starts the node (own process, isolated DDS domain), streams --stream-size rgb8 frames at --rate Hz, and
records the node with `py-spy record --format raw` (Python stacks, idle threads excluded). Only stacks of
the inference worker (SegmenterNode._work) are kept: the table gives each function's inclusive share of the
worker's busy samples, then the innermost lines where the time is spent (self time).

With --gil, py-spy samples only the thread holding the GIL (`--gil --threads`): the table gives each
thread's share of the wall time during which it held the GIL (worker: stacks under SegmenterNode._work;
executor: under an rclpy executor's spin), which shows how much the node's other Python threads compete
with the worker for it.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import rosbench

WORKER_FRAME = "_work (pmp_ros/ros/node.py"
FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def worker_stacks(raw: str) -> list[tuple[list[str], int]]:
    """(frames root first, samples) of the inference worker's stacks in py-spy's raw (collapsed) output."""
    stacks = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if WORKER_FRAME in stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def gil_holders(raw: str, samples: int) -> list[dict]:
    """Share of all `samples` sampling instants at which each kind of thread held the GIL, from py-spy's raw
    output of `record --gil --threads` (root frame of each stack: the thread)."""
    held: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if WORKER_FRAME in stack:
            role = "worker (SegmenterNode._work)"
        elif "rclpy/executors.py" in stack:
            role = "executor (rclpy spin)"
        else:
            role = "other Python threads"
        held[role] += int(count)
    rows = [{"thread": role, "gil_share": n / samples, "samples": n} for role, n in held.most_common()]
    rows.append(
        {"thread": "GIL held by any thread", "gil_share": sum(held.values()) / samples, "samples": sum(held.values())}
    )
    return rows


def short(frame: str, with_line: bool) -> str:
    """'func (…/site-packages/torch/nn/functional.py:123)' -> 'func (torch/nn/functional.py[:123])'."""
    match = FRAME.match(frame)
    if not match:
        return frame
    path = re.sub(r"^.*/(site-packages|work/main)/", "", match["file"])
    line = f":{match['line']}" if with_line and match["line"] else ""
    return f"{match['function']} ({path}{line})"


def summarize(stacks: list[tuple[list[str], int]], top: int) -> tuple[int, list[dict], list[dict]]:
    """(busy samples, inclusive rows of pmp_ros functions, self-time rows of innermost lines)."""
    total = sum(count for _, count in stacks)
    inclusive: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    for frames, count in stacks:
        for name in {short(f, False) for f in frames if "pmp_ros/" in f}:
            inclusive[name] += count
        leaves[short(frames[-1], True)] += count
    rows = [{"function": name, "share": n / total, "samples": n} for name, n in inclusive.most_common(top)]
    self_rows = [{"function": name, "share": n / total, "samples": n} for name, n in leaves.most_common(top)]
    return total, rows, self_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benchlib.add_common_args(parser)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sampling")
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--stream-size", default="640x480")
    parser.add_argument("--inference-size", default="320x240")
    parser.add_argument("--sampling-rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw-out", type=Path, help="keep py-spy's raw stacks here (flamegraph input)")
    parser.add_argument("--gil", action="store_true", help="which threads hold the GIL, instead of the profile")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).is_file():
        raise SystemExit("py-spy not found: install it with `.venv/bin/pip install py-spy`")
    from pmp_ros.ros.process import NodeProcess

    with tempfile.TemporaryDirectory(prefix="pmp_profile_node_") as folder:
        run_dir = Path(folder)
        domain = rosbench.isolate(run_dir)
        model_file, description = benchlib.model_path(args, run_dir)
        width, height = benchlib.parse_size(args.inference_size)
        info = benchlib.machine(
            {
                "model": description,
                "inference_size": args.inference_size,
                "stream": f"{args.stream_size} at {args.rate:g} Hz",
                "threads": args.threads,
            }
        )
        benchlib.print_machine(info)
        params = rosbench.node_parameters(model_file, args.threads, width, height)
        raw_path = args.raw_out or run_dir / "stacks.txt"
        with NodeProcess(params, domain, run_dir / "node.log") as node:
            node.wait_ready()
            client = rosbench.BenchClient()
            try:
                client.wait_connected()
                client.set_instruction("pick up the red star")
                msg = rosbench.image_message(benchlib.scene_image(*benchlib.parse_size(args.stream_size)))
                rosbench.stream(client, msg, args.rate, 3.0)  # text encoded, steady state
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(node.process.pid),
                        "--format",
                        "raw",
                        "--rate",
                        str(args.sampling_rate),
                        "--duration",
                        str(int(args.duration)),
                        *(["--gil", "--threads"] if args.gil else ["--nonblocking"]),
                        "--output",
                        str(raw_path),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                time.sleep(1.0)  # py-spy attaches
                rosbench.stream(client, msg, args.rate, args.duration)
                spy_output, _ = spy.communicate(timeout=60)
            finally:
                client.close()
        if spy.returncode != 0 or not raw_path.is_file():
            raise SystemExit(f"py-spy failed ({spy.returncode}):\n{spy_output}")
        if args.gil:
            rows = gil_holders(raw_path.read_text(), int(args.duration * args.sampling_rate))
            benchlib.print_table(
                "share of the wall time each thread held the GIL",
                rows,
                [("thread", "thread", "s"), ("gil_share", "share", ".1%"), ("samples", "samples", "d")],
            )
            benchlib.write_json(args.json, {"benchmark": "profile_node --gil", "machine": info, "gil": rows})
            return
        total, rows, self_rows = summarize(worker_stacks(raw_path.read_text()), args.top)
    print(
        f"\ninference worker: {total} busy samples at {args.sampling_rate} Hz "
        f"({total / args.sampling_rate:.1f} s busy of {args.duration:g} s)"
    )
    columns = [("function", "function", "s"), ("share", "share", ".1%"), ("samples", "samples", "d")]
    benchlib.print_table("inclusive share of the worker's busy time (pmp_ros functions)", rows, columns)
    benchlib.print_table("self time: innermost Python lines", self_rows, columns)
    benchlib.write_json(
        args.json,
        {"benchmark": "profile_node", "machine": info, "busy_samples": total, "inclusive": rows, "self": self_rows},
    )


if __name__ == "__main__":
    main()
