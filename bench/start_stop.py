"""Stop the node at random moments and check every stop is clean (issue #26): exit code, time to exit, no
traceback, no ERROR line, no process left.

    python bench/start_stop.py --runs 20                       # shipped model, 20 stops, about 15 min
    python bench/start_stop.py --random-model --runs 4 --json out.json   # smoke

Each run starts `python -m pmp_ros.ros.node` (the shipped model or --model/--random-model, on the CPU) in
its own process and sends SIGINT or SIGTERM (chosen at random) at a random moment of a random phase:
  before_startup  before the node is on the ROS graph (imports, rclpy init): a random time before it appeared
                  there in a calibration run
  during_startup  between its appearing on the graph and its ready line (configure: model loading), likewise
  just_ready      0-0.3 s after its ready line
  idle            1-3 s after its ready line, no input
  streaming       an instruction and 10 Hz images for 1-3 s after the ready line, the signal while they flow
The calibration run (started and stopped once, not counted) measures the phases' lengths (the node logs
nothing before its ready line, so the graph marks the end of imports). A run is clean
when the node exits with 0 within --exit-limit seconds (5 s, issue #26) of the signal, printed no traceback
and no ERROR line, and no process it started (nor the node) is left; a node still running after
--kill-after seconds is SIGKILLed and counted. The table lists every run; --json writes them.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pmp_ros.ros import interface
from pmp_ros.ros.client import wait_until
from pmp_ros.ros.node import READY_TEXT
from pmp_ros.ros.process import ChildProcess

import benchlib
import rosbench

PHASES = ("before_startup", "during_startup", "just_ready", "idle", "streaming")
SIGNALS = ("SIGINT", "SIGTERM")
STARTUP_TIMEOUT_S = 300.0
STREAM_RATE_HZ = 10.0
INSTRUCTION = "pick up the red star"


def node_argv(model_file: Path, threads: int) -> list[str]:
    params = {"model_path": str(model_file), "device": "cpu", "cpu_threads": threads}
    args = [x for name, value in params.items() for x in ("-p", f"{name}:={value}")]
    return [sys.executable, "-m", "pmp_ros.ros.node", "--ros-args", *args]


def wait_for_text(node: ChildProcess, text: str, timeout: float) -> float | None:
    """Seconds until `text` is in the node's output, or None if it exited first or timed out."""
    try:
        return node.wait_for_output(text, timeout)
    except RuntimeError:
        return None


def on_graph(client, node: ChildProcess) -> bool:
    """Whether the node is on the ROS graph (its rclpy node exists), or has exited."""
    return interface.NODE_NAME in client.node.get_node_names() or node.returncode is not None


def calibrate(argv: list[str], log_dir: Path, env: dict, client) -> tuple[float, float]:
    """(seconds until the node is on the ROS graph, seconds until its ready line) of one start."""
    with ChildProcess(argv, env, log_dir / "calibration.log", name="the node") as node:
        start = time.monotonic()
        wait_until(lambda: on_graph(client, node), STARTUP_TIMEOUT_S, "the node on the graph", interval=0.02)
        graph = time.monotonic() - start
        node.wait_for_output(READY_TEXT, STARTUP_TIMEOUT_S)
        return graph, time.monotonic() - start


def descendants(pid: int) -> set[int]:
    """The processes below `pid`, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        children.setdefault(int(text.rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reach_moment(
    node: ChildProcess, phase: str, rng: random.Random, timing: tuple[float, float], client, frame
) -> float:
    """Wait until the run's random moment in `phase` (streaming: while publishing); returns seconds since
    start at the signal. The moment is drawn before waiting, so a slow start shifts it only within its phase."""
    graph, ready = timing
    start = time.monotonic()
    if phase == "before_startup":
        time.sleep(rng.uniform(0.0, 0.9 * graph))
    elif phase == "during_startup":
        wait_until(lambda: on_graph(client, node), STARTUP_TIMEOUT_S, "the node on the graph", interval=0.02)
        time.sleep(rng.uniform(0.0, 0.9 * max(ready - graph, 0.0)))
    else:
        if wait_for_text(node, READY_TEXT, STARTUP_TIMEOUT_S) is None:
            return time.monotonic() - start  # it exited (or hung) in start-up: the signal finds that out
        delay = {"just_ready": (0.0, 0.3), "idle": (1.0, 3.0), "streaming": (1.0, 3.0)}[phase]
        wait_s = rng.uniform(*delay)
        if phase == "streaming":
            client.wait_connected()
            client.set_instruction(INSTRUCTION)
            rosbench.stream(client, frame, STREAM_RATE_HZ, wait_s)
        else:
            time.sleep(wait_s)
    return time.monotonic() - start


def one_run(index: int, argv, env, log_dir: Path, rng, timing, client, frame, args) -> dict:
    phase, signame = rng.choice(PHASES), rng.choice(SIGNALS)
    node = ChildProcess(argv, env, log_dir / f"run{index:03d}_{phase}_{signame}.log", name="the node")
    with node:
        pid = node.process.pid
        at = reach_moment(node, phase, rng, timing, client, frame)
        children = descendants(pid)
        sent = time.monotonic()
        node.process.send_signal(getattr(signal, signame))
        killed = False
        try:
            code = node.process.wait(args.kill_after)
        except subprocess.TimeoutExpired:  # hung
            node.process.kill()
            code = node.process.wait()
            killed = True
        exit_s = time.monotonic() - sent
        # Anything it started must have ended with it; give the kernel a moment to reap.
        time.sleep(0.2)
        left = sorted(p for p in children | descendants(pid) if alive(p))
        output = node.output()
    error_lines = [line for line in output.splitlines() if "ERROR" in line or "[FATAL]" in line]
    record = {
        "run": index,
        "phase": phase,
        "signal": signame,
        "signal_at_s": round(at, 3),
        "exit_code": code,
        "exit_s": round(exit_s, 3),
        "killed": killed,
        "tracebacks": output.count("Traceback (most recent call last)"),
        "error_lines": len(error_lines),
        "first_error": error_lines[0][:200] if error_lines else "",
        "left_processes": len(left),
        "log": str(node.log_path),
    }
    clean_codes = (0,) if not args.allow_signal_codes else (0, 128 + getattr(signal, signame))
    record["clean"] = (
        code in clean_codes
        and not killed
        and exit_s <= args.exit_limit
        and record["tracebacks"] == 0
        and record["error_lines"] == 0
        and not left
    )
    for stray in left:  # this script started them (through the node): leave nothing behind
        try:
            os.kill(stray, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_args(parser)
    parser.add_argument("--runs", type=int, default=20, help="stops, at random phases and moments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exit-limit", type=float, default=5.0, help="seconds a clean stop may take")
    parser.add_argument("--kill-after", type=float, default=60.0, help="SIGKILL a node still running after (s)")
    parser.add_argument(
        "--allow-signal-codes", action="store_true", help="count 128 + the signal number as a clean exit code too"
    )
    parser.add_argument("--keep-logs", type=Path, help="folder for the nodes' logs (default: a temporary one)")
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="pmp_start_stop_"))
    domain = rosbench.isolate(run_dir)
    log_dir = args.keep_logs or run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    model_file, model_text = benchlib.model_path(args, run_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = node_argv(model_file, args.threads)
    info = benchlib.machine({"model": model_text, "ros_domain_id": domain, "runs": args.runs, "seed": args.seed})
    benchlib.print_machine(info)

    client = rosbench.BenchClient()
    runs = []
    try:
        timing = calibrate(argv, log_dir, env, client)
        print(f"calibration: on the ROS graph after {timing[0]:.1f} s, ready after {timing[1]:.1f} s")
        frame = rosbench.image_message(benchlib.scene_image(320, 240))
        rng = random.Random(args.seed)
        for index in range(args.runs):
            record = one_run(index, argv, env, log_dir, rng, timing, client, frame, args)
            runs.append(record)
            verdict = "clean" if record["clean"] else "NOT CLEAN"
            print(
                f"run {index:3d} {record['phase']:15s} {record['signal']:7s} at {record['signal_at_s']:6.2f} s: "
                f"exit {record['exit_code']} after {record['exit_s']:.2f} s, {record['tracebacks']} traceback(s), "
                f"{record['error_lines']} ERROR line(s), {record['left_processes']} left: {verdict}",
                flush=True,
            )
    finally:
        client.close()
    columns = [
        ("phase", "phase", "s"),
        ("signal", "signal", "s"),
        ("exit_code", "exit code", "d"),
        ("exit_s", "exit (s)", ".2f"),
        ("tracebacks", "tracebacks", "d"),
        ("error_lines", "ERROR lines", "d"),
        ("left_processes", "left", "d"),
        ("clean", "clean", "s"),
    ]
    benchlib.print_table("stops", [{**r, "clean": str(r["clean"])} for r in runs], columns)
    summary = {
        "runs": len(runs),
        "clean": sum(r["clean"] for r in runs),
        "tracebacks": sum(r["tracebacks"] for r in runs),
        "error_lines": sum(r["error_lines"] for r in runs),
        "nonzero_exits": sum(r["exit_code"] != 0 for r in runs),
        "over_exit_limit": sum(r["exit_s"] > args.exit_limit for r in runs),
        "killed": sum(r["killed"] for r in runs),
        "left_processes": sum(r["left_processes"] for r in runs),
        "max_exit_s": max((r["exit_s"] for r in runs), default=None),
    }
    print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    print(f"logs in {log_dir}")
    benchlib.write_json(args.json, {"machine": info, "timing_s": timing, "summary": summary, "runs": runs})
    return 0 if summary["clean"] == summary["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
