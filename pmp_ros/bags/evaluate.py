"""pmp-eval-bag: replay bags into the node through real topics and report accuracy, latency and drops.

    pmp-eval-bag bags/world_10s bags/photos --model models/pmp_default.safetensors --lockstep --out eval_out
    pmp-eval-bag robot_run/ --image-topic /camera/color/image_raw --use-running-node --rate 1.0

For each bag: the node is started in its own process (or --use-running-node uses one already running in this
ROS domain), the bag is played into its topics (timed, --rate, or --lockstep), its answers are matched to
the images by header stamp, and report.json / report.md / latency plots are written to OUT/<bag name>/.
Accuracy uses pmp_ros.eval.metrics.frame_metrics on the frames that have ground truth and a result; with depth, so do
the 3D errors of the node's objects for the matched targets (pmp_ros.eval.metrics.errors3d, against the ground
truth's solids). When the ground truth's ids continue across frames (tracking bags): IDF1, ID switches, MOTA
and the target flicker rate of the node's track ids (pmp_ros.bags.tracking_metrics); --tracking-baseline
replays the bag a second time with tracking:=false for the same figures without tracking. With ROS_DOMAIN_ID
set, every bag runs in that domain, one after another (--jobs is not used: two nodes in one domain would
see each other's topics); without it, several bags run in parallel processes (--jobs), each in a random ROS
domain of its own. The tool says which, and each report records its domain. A bag with problems (missing
topics, unexpected types, truncated files, no ground truth) is reported with what could still be measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from std_msgs.msg import String
from tqdm import tqdm

from pmp_ros.bags.messages import COMPRESSED_TYPE, STRING_TYPE, BagTopics, prediction_from_messages, truth_from_message
from pmp_ros.bags.player import Playback, Player
from pmp_ros.bags.storage import BagContents, BagMessage, inspect_bag
from pmp_ros.bags.tracking_metrics import (
    WITH_TRACKING,
    WITHOUT_TRACKING,
    missing_tracking_truth,
    published_tracks,
    score_replay,
)
from pmp_ros.eval.metrics.errors3d import matched_summary
from pmp_ros.eval.metrics.frame_metrics import aggregate_instruction_metrics, instruction_frame_metrics
from pmp_ros.eval.report import latency_summary, write_bag_report
from pmp_ros.ros.client import serialize
from pmp_ros.ros.environment import configure_dds_environment, release_domains
from pmp_ros.ros.process import NodeProcess, pick_domains, user_domain
from pmp_ros.ros.stop_signals import Interrupted, handle_stop_signals, raising, stop_signals


@dataclass
class EvalOptions:
    """How to run each bag; node_params are extra node parameters (name -> value)."""

    model: str | None = None
    use_running_node: bool = False
    lockstep: bool = False
    rate: float = 1.0
    topics: BagTopics = field(default_factory=BagTopics)
    node_params: dict[str, str] = field(default_factory=dict)
    namespace: str = ""
    instruction: str | None = None
    device: str = "auto"
    frame_timeout: float = 30.0
    progress: bool = True
    tracking_baseline: bool = False  # replay tracking bags again with tracking:=false (figures without tracking)


class CannotEvaluate(Exception):
    """Known before anything starts: a bag the node could answer no frame of; the text says why."""


def _node_params(options: EvalOptions, contents: BagContents) -> dict[str, object]:
    """Parameters of the node under test: depth only when the bag has depth and camera info, compressed
    transport for a CompressedImage topic, reliable images (the measurement is of the node, not of losses
    in the transport)."""
    params: dict[str, object] = {
        "device": options.device,
        "image_reliability": "reliable",
        "use_depth": "depth" in contents.roles and "depth_info" in contents.roles,
        "image_transport": "compressed" if contents.roles.get("image") == COMPRESSED_TYPE else "raw",
    }
    if options.model:
        params["model_path"] = str(Path(options.model).resolve())
    return {**params, **options.node_params}


def _instruction_plan(options: EvalOptions, contents: BagContents, start_ns: int) -> tuple[list[BagMessage], bool]:
    """(messages to play first, instruction_from_gt) when the bag has no instruction topic: the ground
    truth's instructions, else --instruction, else CannotEvaluate (the node answers nothing without one)."""
    if "instruction" in contents.roles:
        return [], False
    if "gt" in contents.roles:
        contents.problems.append("instructions taken from the ground truth messages")
        return [], True
    if options.instruction:
        contents.problems.append(f"instruction {options.instruction!r} from the command line")
        return [BagMessage("instruction", STRING_TYPE, start_ns, serialize(String(data=options.instruction)))], False
    raise CannotEvaluate(_no_instruction(contents))


def _no_instruction(contents: BagContents) -> str:
    return (
        f"{contents.path}: no instruction topic {contents.topics.instruction}, no ground truth topic "
        f"{contents.topics.gt} and no --instruction: the node would answer no frame (give --instruction "
        f"TEXT, or --instruction-topic / --gt-topic if the bag names them otherwise)"
    )


def check_bags(bags: list[Path], options: EvalOptions) -> None:
    """CannotEvaluate, before any node starts, when a bag has images but nothing to instruct the node with:
    every frame would wait out --frame-timeout and count as dropped."""
    reasons = []
    for bag in bags:
        contents, _ = inspect_bag(bag, options.topics, topics_only=True)
        if "image" in contents.roles and not {"instruction", "gt"} & contents.roles.keys() and not options.instruction:
            reasons.append(_no_instruction(contents))
    if reasons:
        raise CannotEvaluate("; ".join(reasons))


def _frames_and_records(playback: Playback, contents: BagContents) -> tuple[list[dict], list[dict]]:
    """Per-frame rows for the report and the metric records of frames with ground truth and a result."""
    rows, records = [], []
    for frame in playback.frames:
        row = {
            "index": frame.index,
            "stamp": f"{frame.key[0]}.{frame.key[1]:09d}",
            "published_s": frame.published_at - playback.started_at,
            "latency_ms": None if frame.latency_s is None else frame.latency_s * 1e3,
            "instruction": frame.instruction,
            "result_instruction": None if frame.result is None else frame.result.instruction,
            "instances": None if frame.result is None else len(frame.result.instances),
        }
        truth = playback.truths.get(frame.key)
        if frame.result is not None and truth is not None:
            try:
                record = instruction_frame_metrics(
                    prediction_from_messages(frame.result, frame.points, frame.objects),
                    truth_from_message(truth, playback.cameras.get(frame.key)),
                )
            except ValueError as error:  # e.g. ground truth of another size than the image
                contents.problems.append(f"frame {frame.index}: not evaluated: {error}")
            else:
                records.append(record)
                row.update(tp=record["tp"], fp=record["fp"], fn=record["fn"])
        rows.append(row)
    return rows, records


def _objects_3d(playback: Playback, records: list[dict]) -> tuple[dict | None, str]:
    """(errors3d.matched_summary of the records' targets, or None when no 3D error can be measured; why)."""
    evaluated = [f for f in playback.frames if f.result is not None and f.key in playback.truths]
    if not records:
        return None, "no frame with ground truth and a result"
    if all(f.objects is None for f in evaluated):
        return None, (
            "the node published no 3D objects (they need depth and camera info in the bag, and a running node "
            "with use_depth)"
        )
    if not any(o.shape for f in evaluated for o in playback.truths[f.key].objects):
        return None, (
            "the ground truth holds no 3D truths (real photos, or a bag recorded before pmp-write-bag recorded them)"
        )
    with_objects = sum(f.objects is not None for f in evaluated)
    return matched_summary([t for r in records for t in r["targets"]]), (
        f"{with_objects} of {len(evaluated)} evaluated frames with the node's 3D objects"
    )


def evaluate_bag(bag: Path, options: EvalOptions, domain_id: int | None, out_dir: Path, position: int = 0) -> dict:
    """Evaluate one bag into out_dir; returns its report (also written as report.json). domain_id: the ROS
    domain of the node and the player (None: this process's, for --use-running-node)."""
    contents, source = inspect_bag(bag, options.topics)
    report = {
        "bag": str(bag),
        "ros_domain_id": domain_id if domain_id is not None else user_domain(),
        "mode": "lockstep" if options.lockstep else f"timed (rate {options.rate:g})",
        "model": options.model or ("running node" if options.use_running_node else "node default"),
        "topics": {
            role: getattr(options.topics, role) for role in ("image", "instruction", "depth", "depth_info", "gt")
        },
        "frames": 0,
        "results": 0,
        "dropped": 0,
        "drop_rate": None,
        "latency_ms": latency_summary([]),
        "input_rate_hz": None,
        "throughput_hz": None,
        "accuracy": None,
        "accuracy_note": "nothing was played (see problems)",
        "objects_3d": None,
        "objects_3d_note": "nothing was played (see problems)",
        "tracking": None,
        "tracking_note": "not available: nothing was played (see problems)",
        "problems": contents.problems,
        "other_topics": contents.other_topics,
    }
    rows: list[dict] = []
    if source is not None and "image" not in contents.roles:
        contents.problems.append("nothing to play without images")
        contents.problems.append(
            f"topics in the bag: {_topic_list(contents)}; --image-topic names the colour image topic"
        )
    elif source is not None:
        first, from_gt = _instruction_plan(options, contents, contents.start_ns)

        def replay(untracked: bool = False) -> Playback:
            # A bag's messages are read once per opening (the reader closes after them): a second replay reopens it.
            messages = inspect_bag(bag, options.topics)[1]() if untracked else source()
            return _play(chain(first, messages), from_gt, options, contents, domain_id, out_dir, position, untracked)

        try:
            playback = replay()
        except (RuntimeError, TimeoutError) as error:
            contents.problems.append(str(error))
        else:
            contents.problems += playback.notes
            rows, records = _frames_and_records(playback, contents)
            report.update(_timing(playback))
            if records:
                report["accuracy"] = aggregate_instruction_metrics(records)
            report["accuracy_note"] = (
                "no ground truth topic in the bag"
                if "gt" not in contents.roles
                else f"{len(records)} frames with ground truth and a result"
            )
            report["objects_3d"], report["objects_3d_note"] = _objects_3d(playback, records)
            report["tracking"], report["tracking_note"] = _tracking(playback, options, lambda: replay(untracked=True))
    write_bag_report(report, rows, out_dir)
    return report


def _tracking(playback: Playback, options: EvalOptions, replay_untracked) -> tuple[dict | None, str]:
    """({WITH_TRACKING: summary, WITHOUT_TRACKING: summary}, a summary None when not measured), or None when the
    bag's ground truth cannot measure tracking; and a note saying where each figure comes from or why not.
    replay_untracked: plays the bag again into a node with tracking:=false."""
    missing = missing_tracking_truth(playback)
    if missing:
        return None, f"not available: {missing}"
    if not published_tracks(playback):
        return {WITH_TRACKING: None, WITHOUT_TRACKING: score_replay(playback)}, (
            "with tracking: not measured, the node published no track ids (tracking:=false); without tracking: "
            "its per-frame instance ids"
        )
    figures = {WITH_TRACKING: score_replay(playback), WITHOUT_TRACKING: None}
    if not options.tracking_baseline:
        return figures, "without tracking: not measured (--tracking-baseline replays the bag with tracking:=false)"
    if options.use_running_node:
        return figures, "without tracking: not measured (--tracking-baseline starts a node, not with a running one)"
    try:
        figures[WITHOUT_TRACKING] = score_replay(replay_untracked())
    except (RuntimeError, TimeoutError) as error:
        return figures, f"without tracking: the replay with tracking:=false failed: {error}"
    return figures, (
        "with tracking: the node's track ids; without tracking: a second replay with tracking:=false, its "
        "per-frame instance ids"
    )


def _topic_list(contents: BagContents) -> str:
    return ", ".join(f"{topic} ({msgtype})" for topic, msgtype in sorted(contents.found.items())) or "none"


def _play(
    messages,
    from_gt: bool,
    options: EvalOptions,
    contents: BagContents,
    domain_id: int | None,
    out_dir: Path,
    position: int,
    untracked: bool = False,
) -> Playback:
    """Start the node (unless one is running), play the messages into it and collect its answers. untracked:
    the node with tracking:=false, logging to node_untracked.log."""
    params = {**_node_params(options, contents), "tracking": False} if untracked else _node_params(options, contents)
    node = (
        nullcontext()
        if options.use_running_node
        else NodeProcess(params, domain_id, out_dir / ("node_untracked.log" if untracked else "node.log"))
    )
    # objects=None: the 3D objects are collected when the node publishes them (with depth).
    compressed = contents.roles.get("image") == COMPRESSED_TYPE
    with node, Player(domain_id, options.namespace, compressed, objects=None) as player:
        if not options.use_running_node:
            node.wait_ready()
        player.wait_for_node()
        with tqdm(
            total=contents.counts.get("image"),
            unit="frame",
            desc=Path(contents.path).name,
            position=position,
            disable=not options.progress,
        ) as bar:
            return player.play(
                messages,
                lockstep=options.lockstep,
                rate=options.rate,
                frame_timeout=options.frame_timeout,
                instruction_from_gt=from_gt,
                on_frame=lambda frame: bar.update(),
            )


def _timing(playback: Playback) -> dict:
    frames = playback.frames
    answered = [f for f in frames if f.result is not None]
    span = max(playback.ended_at - playback.started_at, 1e-9)
    last_publish = max((f.published_at for f in frames), default=playback.started_at) - playback.started_at
    return {
        "frames": len(frames),
        "results": len(answered),
        "dropped": len(frames) - len(answered),
        "drop_rate": (len(frames) - len(answered)) / len(frames) if frames else None,
        "latency_ms": latency_summary([f.latency_s for f in answered]),
        "input_rate_hz": (len(frames) - 1) / last_publish if len(frames) > 1 and last_publish > 0 else None,
        "throughput_hz": len(answered) / span,
    }


def _output_dirs(bags: list[Path], out: Path) -> list[Path]:
    """OUT/<bag name>, made unique when two bags share a name."""
    dirs, seen = [], set()
    for bag in bags:
        name = Path(bag).resolve().name or "bag"
        unique, n = name, 2
        while unique in seen:
            unique, n = f"{name}_{n}", n + 1
        seen.add(unique)
        dirs.append(out / unique)
    return dirs


def _domain_plan(count: int, jobs: int, use_running_node: bool) -> tuple[list[int | None], int, str]:
    """(each bag's ROS domain, bags at a time, the sentence that says so). One domain means one bag at a
    time: the running node's (this process's domain) and the user's ROS_DOMAIN_ID; otherwise a random
    domain per bag (process.pick_domains), `jobs` at a time."""
    bags = f"{count} bag{'s' if count != 1 else ''}"
    if use_running_node:
        return [None] * count, 1, f"{bags} one after another against the running node, in this process's domain"
    domain = user_domain()
    if domain is not None:
        plan = f"{bags} one after another in ROS_DOMAIN_ID {domain}"
        if jobs > 1 and count > 1:
            plan += f" (--jobs {jobs} not used: parallel nodes need domains of their own)"
        return [domain] * count, 1, plan
    jobs = max(1, min(jobs, count))
    domains = pick_domains(count)
    return (
        domains,
        jobs,
        (
            f"{bags}, {jobs} at a time, each in a random ROS domain of its own ({', '.join(map(str, domains))}; set "
            "ROS_DOMAIN_ID to run them one after another in yours)"
        ),
    )


def _evaluate_bag_in_worker(*args) -> dict:
    """evaluate_bag in a pool worker: a stop signal unwinds it (its node is stopped), and a worker that
    was told to stop starts no further bag."""
    with raising():
        return evaluate_bag(*args)


def evaluate_bags(bags: list[Path], options: EvalOptions, out: Path, jobs: int = 1) -> list[dict]:
    """Evaluate bags (in parallel processes when jobs > 1); writes OUT/summary.json and summary.md.
    CannotEvaluate before anything starts when a bag cannot be evaluated at all (check_bags)."""
    check_bags(bags, options)
    dirs = _output_dirs(bags, out)
    claimed = not options.use_running_node and user_domain() is None  # else the domains are not ours to free
    domains, jobs, plan = _domain_plan(len(bags), jobs, options.use_running_node)
    print(f"pmp-eval-bag: {plan}", flush=True)
    try:
        if jobs == 1:
            reports = [evaluate_bag(b, options, d, o, 0) for b, d, o in zip(bags, domains, dirs)]
        else:
            with ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("spawn"), initializer=handle_stop_signals
            ) as pool:
                futures = [
                    pool.submit(_evaluate_bag_in_worker, b, options, d, o, i % jobs)
                    for i, (b, d, o) in enumerate(zip(bags, domains, dirs))
                ]
                try:
                    reports = [f.result() for f in futures]
                except Interrupted:
                    # Only this process got the signal (e.g. kill): pass it on to the workers, which stop their
                    # nodes; leaving the pool waits for them.
                    for future in futures:
                        future.cancel()
                    for worker in multiprocessing.active_children():
                        worker.terminate()
                    raise
    finally:
        if claimed:
            release_domains(domains)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"bags": reports}, indent=1))
    lines = [
        "| bag | mode | frames | results | dropped | latency p50 (ms) | F1 | problems |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, d in zip(reports, dirs):
        f1 = r["accuracy"]["all"]["f1"] if r["accuracy"] else None
        p50 = r["latency_ms"]["p50"]
        lines.append(
            f"| [{Path(r['bag']).name}]({d.name}/report.md) | {r['mode']} | {r['frames']} | {r['results']} | "
            f"{r['dropped']} | {'n/a' if p50 is None else f'{p50:.1f}'} | "
            f"{'n/a' if f1 is None else f'{f1:.3f}'} | {len(r['problems'])} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return reports


def _parser() -> argparse.ArgumentParser:
    defaults = BagTopics()
    parser = argparse.ArgumentParser(
        prog="pmp-eval-bag", description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("bags", nargs="+", type=Path, help="rosbag2 folders (mcap or sqlite3)")
    parser.add_argument("--model", help="checkpoint for the node (default: the node's shipped model)")
    parser.add_argument(
        "--use-running-node",
        action="store_true",
        help="evaluate a node already running in this ROS domain instead of starting one",
    )
    parser.add_argument("--namespace", default="", help="namespace of the node under test")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--lockstep", action="store_true", help="publish a frame, wait for its result, then the next (no drops)"
    )
    mode.add_argument("--rate", type=float, default=1.0, help="timed playback speed factor")
    parser.add_argument("--image-topic", default=defaults.image, help="sensor_msgs/Image or CompressedImage")
    parser.add_argument("--instruction-topic", default=defaults.instruction)
    parser.add_argument("--depth-topic", default=defaults.depth)
    parser.add_argument("--depth-info-topic", default=defaults.depth_info)
    parser.add_argument("--gt-topic", default=defaults.gt, help="pmp_ros_msgs/GroundTruth")
    parser.add_argument(
        "--instruction",
        help="instruction to use when a bag has none (no topic, no ground truth); "
        "without one such a bag is an error (exit code 2)",
    )
    parser.add_argument("--device", default="auto", help="node parameter device")
    parser.add_argument(
        "--node-param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter, e.g. score_threshold:=0.3 (repeatable)",
    )
    parser.add_argument("--frame-timeout", type=float, default=30.0, help="lockstep: give up on a frame after (s)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 1) // 4),
        help="bags evaluated in parallel, each with its own node in a random ROS domain; not used when "
        "ROS_DOMAIN_ID is set (the bags then run one after another in that domain)",
    )
    parser.add_argument(
        "--tracking-baseline",
        action="store_true",
        help="for bags whose ground truth ids continue across frames: replay again with tracking:=false to "
        "report IDF1, ID switches, MOTA and flicker without tracking beside the tracked figures",
    )
    parser.add_argument("--out", type=Path, default=Path("eval_out"), help="report folder")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry pmp-eval-bag. Exit code 0 when every bag was played (problems are in the reports), 1 when
    one had nothing to play, 2 for a usage error or a bag that cannot be evaluated (nothing started),
    128 + the signal number when stopped by SIGINT or SIGTERM (the node it started is stopped first)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error(f"--rate must be > 0, got {args.rate}")
    params = {}
    for item in args.node_param:
        name, sep, value = item.partition(":=")
        if not sep:
            print(f"pmp-eval-bag: --node-param needs NAME:=VALUE, got {item!r}", file=sys.stderr)
            return 2
        params[name] = value
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    configure_dds_environment()
    options = EvalOptions(
        model=args.model,
        use_running_node=args.use_running_node,
        lockstep=args.lockstep,
        rate=args.rate,
        topics=BagTopics(
            args.image_topic, args.instruction_topic, args.depth_topic, args.depth_info_topic, args.gt_topic
        ),
        node_params=params,
        namespace=args.namespace,
        instruction=args.instruction,
        device=args.device,
        frame_timeout=args.frame_timeout,
        progress=not args.no_progress,
        tracking_baseline=args.tracking_baseline,
    )
    try:
        with stop_signals():
            reports = evaluate_bags(args.bags, options, args.out, args.jobs)
    except CannotEvaluate as error:
        print(f"pmp-eval-bag: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        started = "" if options.use_running_node else "; the node it started is stopped"
        print(f"pmp-eval-bag: {stop}{started}; reports of finished bags are in {args.out}/", file=sys.stderr)
        return stop.exit_code
    for report in reports:
        acc = report["accuracy"]
        f1 = "n/a" if not acc or acc["all"]["f1"] is None else f"{acc['all']['f1']:.3f}"
        p50 = report["latency_ms"]["p50"]
        print(
            f"{report['bag']}: {report['frames']} frames, {report['results']} results, {report['dropped']} dropped, "
            f"latency p50 {'n/a' if p50 is None else f'{p50:.1f} ms'}, F1 {f1}"
        )
        for problem in report["problems"]:
            print(f"  - {problem}")
    print(f"reports in {args.out}/ (summary.md)")
    return 0 if all(r["frames"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
