"""The node's cost over the raw model, over real DDS, with the node in its own process.

    python bench/bench_node.py --random-model                       # all modes, full lengths (~15 min)
    python bench/bench_node.py --random-model --modes lockstep,load --frames 5 --load-duration 3  # smoke

Modes (--modes, comma separated; default all):
  lockstep  one rgb8 frame at a time per --sizes, waiting for each result: end-to-end latency (publish ->
            labelled_points received) against the raw Predictor.predict measured in this process first, same
            model, threads and input size. Goal: the node adds <= 10 % at p50. Also against the forward
            time the node measures itself in the same seconds (diagnostics inference_p50_ms, last 5 s):
            that ratio does not move with the machine's load between the two measurements.
  load      --stream-size frames at --rate Hz for --load-duration s: latency, achieved output rate, frames
            without result (counted) and the node's dropped_frames, latency of the first vs last third
            (goal: no growth; the node keeps no backlog).
  switch    --switches new instructions during a stream: ms until the first result carrying the new
            instruction and how many results arrived until then (goal: 1 = the next processed frame).
  text      instructions naming 1, 5 and 16 classes (16 = language/limits.py MAX_TARGETS), --frames lock-step
            frames each: first frame (pays the text encoding) against the following ones (text reused).
  idle      the node's CPU over --idle-duration s with no frames (goal: near zero).
  memory    RSS of the node process once a second while streaming for --memory-duration s (default 600),
            growth after --memory-warmup s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import benchlib
import rosbench

MODES = ("lockstep", "load", "switch", "text", "idle", "memory")
RESULT_TIMEOUT_S = 60.0
INSTRUCTION = "pick up the red star"


def raw_forward(model_file: Path, size: tuple[int, int], sizes, frames: int, warmup: int) -> dict[str, dict]:
    """Predictor.predict per camera size, in this process (before the node starts: no contention)."""
    from pmp_ros.language.parse import parse_instruction
    from pmp_ros.model.inference import Predictor

    predictor, cfg = Predictor.from_checkpoint(model_file, "cpu", "auto", size=size)
    predictor.set_prompts(parse_instruction(INSTRUCTION).targets, cfg.train_classes)
    out = {}
    for width, height in sizes:
        image = benchlib.scene_image(width, height)
        out[f"{width}x{height}"] = benchlib.summary_ms(
            benchlib.time_calls(lambda: predictor.predict([image], semantic=False), frames, warmup)
        )
    return out


def lockstep(client, msg, frames: int, warmup: int) -> tuple[list[float], int]:
    """(latencies s of `frames` frames after a warm-up like the raw one's, frames without a result)."""
    lost = 0

    def frame() -> float | None:
        nonlocal lost
        result = client.wait_result(client.publish(msg), RESULT_TIMEOUT_S)
        lost += result is None
        return None if result is None else client.latency(result)

    if warmup:
        benchlib.warm_up(frame, warmup)
    latencies = [x for x in (frame() for _ in range(frames)) if x is not None]
    return latencies, lost


def run_lockstep(client, args, raw, pid: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """(a row per camera size, the node's CPU per thread during each size's timed frames)."""
    rows, threads = [], {}
    for width, height in args.sizes:
        msg = rosbench.image_message(benchlib.scene_image(width, height))
        lockstep(client, msg, 0, args.warmup)
        before, start = rosbench.thread_cpu(pid), time.perf_counter()
        latencies, lost = lockstep(client, msg, args.frames, 0)
        threads[f"{width}x{height}"] = rosbench.thread_cpu_rows(
            pid, before, rosbench.thread_cpu(pid), args.frames, time.perf_counter() - start
        )
        node = benchlib.summary_ms(latencies)
        diagnostics = client.fresh_diagnostics()
        base = raw[f"{width}x{height}"]
        rows.append(
            {
                "image": f"{width}x{height}",
                "raw_p50_ms": base["median_ms"],
                "raw_p95_ms": base["p95_ms"],
                **node,
                "node_inference_p50_ms": float(diagnostics["inference_p50_ms"]),
                "lost": lost,
                "ratio_p50": node["median_ms"] / base["median_ms"] if latencies else None,
                "ratio_in_node": node["median_ms"] / float(diagnostics["inference_p50_ms"]) if latencies else None,
                "in_node_over_raw": float(diagnostics["inference_p50_ms"]) / base["median_ms"],
            }
        )
    return rows, threads


def run_load(client, args, pid: int) -> tuple[dict, list[dict]]:
    """(the stream's row, the node's CPU per thread during the stream, per result)."""
    msg = rosbench.image_message(benchlib.scene_image(*args.stream_size))
    before = client.fresh_diagnostics()
    first = len(client.results)
    cpu_before, start_cpu = rosbench.thread_cpu(pid), time.perf_counter()
    sent = rosbench.stream(client, msg, args.rate, args.load_duration)
    cpu_after, seconds = rosbench.thread_cpu(pid), time.perf_counter() - start_cpu
    time.sleep(2.0)  # the last frame's result
    after = client.fresh_diagnostics()
    results = [r for r in client.results[first:] if r.key in client.published]
    threads = rosbench.thread_cpu_rows(pid, cpu_before, cpu_after, len(results), seconds)
    start = min(client.published[r.key][1] for r in results) if results else 0.0
    by_third: list[list[float]] = [[], [], []]
    for r in results:
        third = min(2, int(3 * (client.published[r.key][1] - start) / args.load_duration))
        by_third[third].append(client.latency(r))
    first_p50, last_p50 = (benchlib.median(x) for x in (by_third[0], by_third[2]))
    row = {
        "image": "{}x{}".format(*args.stream_size),
        "rate_in_hz": args.rate,
        "sent": sent,
        "results": len(results),
        "rate_out_hz": len(results) / args.load_duration,
        "without_result": sent - len(results),
        "node_dropped": int(after["dropped_frames"]) - int(before["dropped_frames"]),
        **benchlib.summary_ms([client.latency(r) for r in results]),
        "first_third_p50_ms": first_p50 and first_p50 * 1e3,
        "last_third_p50_ms": last_p50 and last_p50 * 1e3,
    }
    return row, threads


def run_idle(args, pid: int) -> list[dict]:
    """The node's CPU per thread over --idle-duration s in which nothing is published to it."""
    time.sleep(2.0)  # the last frame of the previous mode is done
    before, start = rosbench.thread_cpu(pid), time.perf_counter()
    time.sleep(args.idle_duration)
    return rosbench.thread_cpu_rows(pid, before, rosbench.thread_cpu(pid), 0, time.perf_counter() - start)


def run_switch(client, args) -> list[dict]:
    """Each switch: a new instruction (a class not used before, so its text is not cached) mid-stream."""
    from pmp_ros.data.vocabulary import all_classes

    msg = rosbench.image_message(benchlib.scene_image(*args.stream_size))
    rows = []
    for i in range(args.switches):
        text = f"find the {all_classes()[(7 * i + 11) % len(all_classes())]}"
        rosbench.stream(client, msg, args.rate, 1.0)  # steady state before the switch
        latest = client.diagnostics[1] if client.diagnostics else client.fresh_diagnostics()
        stale_before = int(latest["stale_results"])  # none since the last switch: it was > 1 s ago
        seen = len(client.results)
        switched = client.set_instruction(text)
        hit = stream_until(client, msg, args.rate, lambda: first_with(client.results[seen:], switched, text))
        rosbench.stream(client, msg, args.rate, 1.5)
        stale_after = int(client.fresh_diagnostics()["stale_results"])
        row = {"switch": i + 1, "instruction": text, "node_stale": stale_after - stale_before}
        if hit is not None:
            count, result = hit
            row.update(
                ms=(result.arrived - switched) * 1e3,
                results_until_new=count,
                frames_sent_meanwhile=sum(1 for _, t in client.published.values() if switched < t <= result.arrived),
            )
        rows.append(row)
    return rows


def first_with(results, since: float, instruction: str):
    """(how many results arrived after `since` up to it, the first result carrying `instruction`) or None."""
    later = [r for r in results if r.arrived > since]
    return next(((k + 1, r) for k, r in enumerate(later) if r.instruction == instruction), None)


def stream_until(client, msg, rate: float, done, timeout: float = RESULT_TIMEOUT_S):
    """Publish at `rate` until done() returns something (returned) or `timeout` s pass (None)."""
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < timeout:
        client.publish(msg)
        sent += 1
        if (value := done()) is not None:
            return value
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    return None


def run_text(client, args) -> list[dict]:
    from pmp_ros.data.vocabulary import all_classes
    from pmp_ros.language.limits import MAX_TARGETS

    msg = rosbench.image_message(benchlib.scene_image(*args.stream_size))
    rows = []
    offset = 30  # classes not named by the other modes' instructions, so nothing is cached yet
    for count in (1, 5, MAX_TARGETS):
        classes = all_classes()[offset : offset + count]
        offset += count
        text = "pick up the " + ", the ".join(classes)
        client.set_instruction(text)
        latencies: list[float] = []
        deadline = time.monotonic() + RESULT_TIMEOUT_S + args.frames * RESULT_TIMEOUT_S / 10
        while len(latencies) < args.frames + 1 and time.monotonic() < deadline:
            result = client.wait_result(client.publish(msg), RESULT_TIMEOUT_S)
            if result is not None and (result.instruction == text or latencies):
                latencies.append(client.latency(result))
        if len(latencies) < 2:
            raise RuntimeError(f"no results for the instruction {text!r}")
        steady = benchlib.summary_ms(latencies[1:])
        rows.append(
            {
                "prompts": count,
                "first_ms": latencies[0] * 1e3,
                **steady,
                "text_ms": latencies[0] * 1e3 - steady["median_ms"],
            }
        )
    client.set_instruction(INSTRUCTION)
    return rows


def run_memory(client, args, pid: int) -> dict:
    msg = rosbench.image_message(benchlib.scene_image(*args.stream_size))
    samples: list[tuple[float, float]] = [(0.0, rosbench.rss_mib(pid))]

    def sample(elapsed):
        if elapsed - samples[-1][0] >= 1.0:
            samples.append((elapsed, rosbench.rss_mib(pid)))

    rosbench.stream(client, msg, args.rate, args.memory_duration, sample)
    warmup = min(args.memory_warmup, args.memory_duration / 3)
    steady = np.array([s for s in samples if s[0] >= warmup])
    slope = float(np.polyfit(steady[:, 0], steady[:, 1], 1)[0] * 60) if len(steady) > 2 else None
    return {
        "duration_s": args.memory_duration,
        "warmup_s": warmup,
        "samples": len(samples),
        "rss_start_mib": samples[0][1],
        "rss_after_warmup_mib": float(steady[0, 1]) if len(steady) else None,
        "rss_end_mib": samples[-1][1],
        "rss_max_mib": max(s[1] for s in samples),
        "growth_after_warmup_mib": float(steady[-1, 1] - steady[0, 1]) if len(steady) else None,
        "slope_mib_per_min": slope,
        "series": samples,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    benchlib.add_common_args(parser)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--sizes", default="320x240,640x480", help="camera sizes of the lockstep mode")
    parser.add_argument("--stream-size", default="640x480", help="camera size of the other modes")
    parser.add_argument("--inference-size", default="320x240", help="the node's inference_width x height")
    parser.add_argument("--frames", type=int, default=100, help="timed lock-step frames per size / prompt count")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rate", type=float, default=30.0, help="input rate (Hz) of the streaming modes")
    parser.add_argument("--load-duration", type=float, default=60.0)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--idle-duration", type=float, default=10.0)
    parser.add_argument("--memory-duration", type=float, default=600.0)
    parser.add_argument("--memory-warmup", type=float, default=60.0)
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: random in 1..101)")
    parser.add_argument(
        "--no-tracking",
        action="store_true",
        help="the node's tracking parameter false: per-frame instances, as the raw Predictor.predict gives them",
    )
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {sorted(unknown)}; choose from {list(MODES)}")
    args.sizes = [benchlib.parse_size(s) for s in args.sizes.split(",")]
    args.stream_size = benchlib.parse_size(args.stream_size)
    args.inference_size = benchlib.parse_size(args.inference_size)
    return args


def main() -> None:
    args = parse_args()
    from pmp_ros.ros.process import NodeProcess

    with tempfile.TemporaryDirectory(prefix="pmp_bench_node_") as folder:
        run_dir = Path(folder)
        domain = rosbench.isolate(run_dir, args.domain_id)
        model_file, description = benchlib.model_path(args, run_dir)
        threads = benchlib.set_threads(args.threads)
        width, height = args.inference_size
        info = benchlib.machine(
            {
                "model": description,
                "inference_size": f"{width}x{height}",
                "threads": threads,
                "tracking": not args.no_tracking,
                "ros_domain_id": domain,
            }
        )
        benchlib.print_machine(info)
        raw = (
            raw_forward(model_file, (height, width), args.sizes, args.frames, args.warmup)
            if "lockstep" in args.modes
            else {}
        )
        params = rosbench.node_parameters(model_file, args.threads, width, height) | {"tracking": not args.no_tracking}
        report: dict = {"benchmark": "bench_node", "machine": info}
        with NodeProcess(params, domain, run_dir / "node.log") as node:
            startup_s = node.wait_ready()
            client = rosbench.BenchClient()
            try:
                client.wait_connected()
                client.set_instruction(INSTRUCTION)
                report["startup_s"] = startup_s
                print(f"node ready after {startup_s:.1f} s (pid {node.process.pid})")
                run_modes(client, args, raw, node.process.pid, report)
            finally:
                client.close()
        benchlib.write_json(args.json, report)


def run_modes(client, args, raw, pid: int, report: dict) -> None:
    if "lockstep" in args.modes:
        rows, threads = run_lockstep(client, args, raw, pid)
        report["lockstep"], report["lockstep_threads"] = rows, threads
        benchlib.print_table(
            "lockstep: publish -> result vs raw Predictor.predict (goal: ratio <= 1.10 at p50)",
            rows,
            [
                ("image", "image", "s"),
                ("raw_p50_ms", "raw p50", ".1f"),
                ("raw_p95_ms", "raw p95", ".1f"),
                *benchlib.STAT_COLUMNS,
                ("node_inference_p50_ms", "in-node fwd p50", ".1f"),
                ("ratio_p50", "node/raw p50", ".2f"),
                ("ratio_in_node", "node/in-node", ".2f"),
                ("in_node_over_raw", "in-node/raw", ".2f"),
                ("lost", "lost", "d"),
            ],
        )
        for image, thread_rows in threads.items():
            benchlib.print_table(
                f"lockstep {image}: the node's CPU per thread (goal: executor <= 5 ms per frame)",
                thread_rows,
                rosbench.THREAD_COLUMNS,
            )
    if "load" in args.modes:
        row, threads = run_load(client, args, pid)
        report["load"], report["load_threads"] = row, threads
        benchlib.print_table(
            "load: streaming input (goal: last-third p50 ~ first-third p50, no backlog)",
            [row],
            [
                ("image", "image", "s"),
                ("rate_in_hz", "in Hz", ".0f"),
                ("rate_out_hz", "out Hz", ".2f"),
                ("sent", "sent", "d"),
                ("without_result", "no result", "d"),
                ("node_dropped", "node dropped", "d"),
                *benchlib.STAT_COLUMNS[:2],
                ("first_third_p50_ms", "1st third p50", ".1f"),
                ("last_third_p50_ms", "last third p50", ".1f"),
            ],
        )
        benchlib.print_table("load: the node's CPU per thread, per result", threads, rosbench.THREAD_COLUMNS)
    if "switch" in args.modes:
        report["switch"] = rows = run_switch(client, args)
        benchlib.print_table(
            "switch: new instruction -> first result carrying it (goal: results = 1)",
            rows,
            [
                ("switch", "#", "d"),
                ("instruction", "instruction", "s"),
                ("ms", "ms", ".0f"),
                ("results_until_new", "results", "d"),
                ("frames_sent_meanwhile", "frames sent", "d"),
                ("node_stale", "stale", "d"),
            ],
        )
        print("  median ms: {}".format(benchlib.median([r["ms"] for r in rows if "ms" in r])))
    if "text" in args.modes:
        report["text"] = rows = run_text(client, args)
        benchlib.print_table(
            "text: first frame after an instruction pays the encoding, later frames reuse it",
            rows,
            [
                ("prompts", "prompts", "d"),
                ("first_ms", "first frame ms", ".1f"),
                ("text_ms", "first - p50", ".1f"),
                *benchlib.STAT_COLUMNS,
            ],
        )
    if "idle" in args.modes:
        report["idle_threads"] = rows = run_idle(args, pid)
        benchlib.print_table(
            f"idle: the node's CPU with no frames for {args.idle_duration:.0f} s (goal: near zero)",
            rows,
            [("thread", "thread", "s"), ("core_share", "share of a core", ".1%")],
        )
    if "memory" in args.modes:
        report["memory"] = row = run_memory(client, args, pid)
        benchlib.print_table(
            "memory: node RSS while streaming (goal: no growth after warm-up)",
            [row],
            [
                ("duration_s", "s", ".0f"),
                ("warmup_s", "warm-up s", ".0f"),
                ("rss_start_mib", "start MiB", ".1f"),
                ("rss_after_warmup_mib", "warm MiB", ".1f"),
                ("rss_end_mib", "end MiB", ".1f"),
                ("rss_max_mib", "max MiB", ".1f"),
                ("growth_after_warmup_mib", "growth MiB", ".1f"),
                ("slope_mib_per_min", "MiB/min", ".2f"),
            ],
        )


if __name__ == "__main__":
    main()
