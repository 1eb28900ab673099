"""Evaluation reports: of checkpoints on the evaluation set (metrics.json, records-<name>.json, report.md,
plots) and of a bag replayed through the node (report.json, report.md, latency plots). One number
formatter for every table (format_value)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pmp_ros.eval import plots

PERCENTILES = (50, 90, 95, 99)


def latency_summary(latencies_s: list[float]) -> dict:
    """Milliseconds: p50/p90/p95/p99, mean, max (None without any result)."""
    if not latencies_s:
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None, "max": None}
    ms = np.asarray(latencies_s) * 1e3
    return {f"p{p}": float(np.percentile(ms, p)) for p in PERCENTILES} | {
        "mean": float(ms.mean()),
        "max": float(ms.max()),
    }


def format_value(value, digits: int = 3) -> str:
    """A table cell: floats with `digits` decimals, "n/a" for a missing value, anything else as str()."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """Markdown table lines (values through format_value), then an empty line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]
    return lines + [""]


_GOAL_TEXT = {"centroid_error_m": ("centroid error", 1e3, "mm"), "normal_error_deg": ("normal error", 1.0, "deg")}


def objects_3d_lines(summary: dict) -> list[str]:
    """Markdown of an errors3d.matched_summary: a table of median / p90 (count) per error over all matched
    targets and those of >= min_area px, then whether each goal is met."""
    blocks = (summary["matched"], summary["matched_large"])

    def cells(pick, scale: float) -> list:
        out = []
        for block in blocks:
            stats = pick(block)
            out += [stats["count"], *(None if stats[q] is None else stats[q] * scale for q in ("median", "p90"))]
        return out

    rows = [
        ["centroid (mm)", *cells(lambda b: b["centroid_error_m"], 1e3)],
        ["normal (deg)", *cells(lambda b: b["normal_error_deg"], 1.0)],
        *[
            [f"box size axis {axis}, abs (mm)", *cells(lambda b, axis=axis: b["size_abs_error_m"][axis], 1e3)]
            for axis in range(3)
        ],
        ["box size worst axis, abs (mm)", *cells(lambda b: b["size_max_abs_error_m"], 1e3)],
    ]
    large = f">= {summary['min_area']} px"
    lines = [
        f"Matched targets: {blocks[0]['targets']} ({blocks[1]['targets']} of {large}). Box sizes only where the "
        f"target is unoccluded and not cut by the border; axes from largest to smallest spread.",
        "",
    ]
    lines += markdown_table(
        ["error", "n", "median", "p90", f"n ({large})", f"median ({large})", f"p90 ({large})"], rows
    )
    for name, goal in summary["goals"].items():
        what, scale, unit = _GOAL_TEXT[name]
        median = "n/a" if goal["median"] is None else f"{goal['median'] * scale:.2f} {unit}"
        lines.append(
            f"- goal: median {what} <= {goal['median_at_most'] * scale:g} {unit} on matched targets of {large}: "
            f"**{'met' if goal['met'] else 'not met'}** (median {median})"
        )
    return lines + [""]


def _model_sections(name: str, result: dict, examples: Sequence[Path]) -> list[str]:
    sem, ins, prop = result["semantic"], result["instruction"], result["proposals"]
    out = [f"## {name}", "", "### Semantic segmentation (prompts = all 100 classes)", ""]
    out += markdown_table(
        ["mIoU seen", "mIoU unseen", "hmean", "mIoU all", "classes seen / unseen", "pixel acc."],
        [
            [
                sem["miou_seen"],
                sem["miou_unseen"],
                sem["hmean"],
                sem["miou"],
                f"{sem['classes_seen']} / {sem['classes_unseen']}",
                sem["pixel_accuracy"],
            ]
        ],
    )
    if sem["absent_classes"]:
        out += [f"Classes absent from the evaluation set (excluded): {', '.join(sem['absent_classes'])}.", ""]
    out += ["### Instruction following (IoU >= 0.5)", ""]
    rows = []
    for split in ("all", "seen", "unseen"):
        s = ins[split]
        e = s["error_3d_m"]
        rows.append(
            [
                split,
                s["targets"],
                s["precision"],
                s["recall"],
                s["f1"],
                s["mean_target_iou"],
                s["points_inside_share"],
                e["median"],
                e["mean"],
                e["p90"],
            ]
        )
    out += markdown_table(
        [
            "targets",
            "n",
            "precision",
            "recall",
            "F1",
            "mean target IoU",
            "points inside",
            "3D err median (m)",
            "3D err mean (m)",
            "3D err p90 (m)",
        ],
        rows,
    )
    out += [
        f"Frames: {ins['frames']}; without targets: {ins['frames_without_targets']} "
        f"(false alarms in {ins['false_alarm_frames']}); scenes with nothing to name: "
        f"{result['setup']['no_instruction']}; parse errors: {result['setup']['parse_errors']}.",
        "",
    ]
    if ins["all"]["fp"]:
        kinds = ", ".join(f"{kind} {count}" for kind, count in ins["all"]["false_positives"].items())
        out += [f"False positives by what they lie on: {kinds}.", ""]
    out += ["### Proposal recall (targets covered at IoU >= 0.5 by the top-K queries)", ""]
    ks = list(prop["all"]["recall"])
    out += markdown_table(
        ["targets", "n", *[f"R@{k}" if k != "all" else f"R@all ({prop['num_queries']})" for k in ks]],
        [[s, prop[s]["targets"], *prop[s]["recall"].values()] for s in ("all", "seen", "unseen")],
    )
    out += ["### 3D objects of matched targets (measured from the predicted mask and depth)", ""]
    out += objects_3d_lines(result["objects_3d"])
    out += ["### Difficulty", ""]
    out += markdown_table(
        ["subset", "targets", "precision", "recall", "mean target IoU", "points inside"],
        [
            [k, v["targets"], v["precision"], v["recall"], v["mean_target_iou"], v["points_inside_share"]]
            for k, v in result["difficulty"].items()
        ],
    )
    out += [f"![per-class IoU](per_class_iou-{name}.png)", ""]
    out += [f"![example]({p.name})" for p in examples] + [""]
    return out


def _comparison(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        ins, sem = r["instruction"], r["semantic"]
        rows.append(
            [
                name,
                sem["miou_seen"],
                sem["miou_unseen"],
                sem["hmean"],
                ins["all"]["f1"],
                ins["seen"]["f1"],
                ins["unseen"]["f1"],
                ins["all"]["mean_target_iou"],
                r["proposals"]["all"]["recall"]["1"],
                ins["all"]["points_inside_share"],
                ins["all"]["error_3d_m"]["median"],
            ]
        )
    return ["## Comparison", ""] + markdown_table(
        [
            "model",
            "mIoU seen",
            "mIoU unseen",
            "hmean",
            "F1",
            "F1 seen",
            "F1 unseen",
            "mean target IoU",
            "proposal R@1",
            "points inside",
            "3D err median (m)",
        ],
        rows,
    )


_SEED_SUFFIX = re.compile(r"^(?P<variant>.+)_s(?P<seed>\d+)$")
_SUMMARY_METRICS = (
    ("mIoU seen", lambda r: r["semantic"]["miou_seen"]),
    ("mIoU unseen", lambda r: r["semantic"]["miou_unseen"]),
    ("hmean", lambda r: r["semantic"]["hmean"]),
    ("F1 seen", lambda r: r["instruction"]["seen"]["f1"]),
    ("F1 unseen", lambda r: r["instruction"]["unseen"]["f1"]),
    ("mean target IoU", lambda r: r["instruction"]["all"]["mean_target_iou"]),
    ("proposal R@1", lambda r: r["proposals"]["all"]["recall"]["1"]),
    ("proposal R@5", lambda r: r["proposals"]["all"]["recall"]["5"]),
    ("points inside", lambda r: r["instruction"]["all"]["points_inside_share"]),
)


def _seed_summary(results: dict[str, dict]) -> list[str]:
    """Models named <variant>_s<seed>: per variant the mean over seeds and the [min, max] spread."""
    groups: dict[str, list[dict]] = {}
    for name, result in results.items():
        match = _SEED_SUFFIX.match(name)
        if match:
            groups.setdefault(match["variant"], []).append(result)
    if not any(len(g) > 1 for g in groups.values()):
        return []
    rows = []
    for variant, runs in groups.items():
        cells = []
        for _, metric in _SUMMARY_METRICS:
            values = [metric(r) for r in runs if metric(r) is not None]
            cells.append(f"{sum(values) / len(values):.3f} [{min(values):.3f}, {max(values):.3f}]" if values else "–")
        rows.append([variant, len(runs), *cells])
    return ["## Over seeds (mean [min, max])", ""] + markdown_table(
        ["variant", "seeds", *[label for label, _ in _SUMMARY_METRICS]], rows
    )


def markdown_report(
    results: dict[str, dict], command: str, weights: dict[str, dict], examples: dict[str, list[Path]] | None = None
) -> str:
    """report.md text. results: model name -> evaluate() result; weights: name -> {path, sha256, bytes};
    examples: name -> overlay images (in the report's folder) shown under the model's section."""
    setup = next(iter(results.values()))["setup"]
    lines = [
        "# PMP evaluation report",
        "",
        f"Command: `{command}`",
        "",
        f"Data: {setup.get('split', 'eval')} split, "
        f"{setup['num_scenes']} scenes (seeds {setup['seeds'][0]}..{setup['seeds'][1]}), "
        f"{setup['image_size'][0]}x{setup['image_size'][1]}, cluttered fraction "
        f"{setup['cluttered_fraction']} ({setup['cluttered_scenes']} cluttered scenes), one instruction per "
        f"scene, absent-class probability {setup['absent_prob']}; definitions in docs/evaluation.md.",
        "",
        "Weights:",
        "",
    ]
    lines += [
        f"- {name}: `{w['path']}` (sha256 {w['sha256']}, {w['bytes']} bytes), "
        f"{results[name]['timing']['scenes_per_minute']:.0f} scenes/min on {results[name]['setup']['device']}"
        for name, w in weights.items()
    ]
    lines += ["", "![proposal recall](proposal_recall.png)", ""]
    if len(results) > 1:
        lines += _comparison(results) + _seed_summary(results)
    for name, result in results.items():
        lines += _model_sections(name, result, (examples or {}).get(name, []))
    return "\n".join(lines)


def write_report(
    out_dir: Path,
    results: dict[str, dict],
    command: str,
    weights: dict[str, dict],
    examples: dict[str, list[Path]] | None = None,
) -> dict:
    """Write metrics.json (everything but per-frame records), records-<name>.json, report.md and the
    per-class IoU / proposal recall plots into out_dir; returns {what: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / "metrics.json",
        "report": out_dir / "report.md",
        "proposal_recall": plots.plot_proposal_recall(results, out_dir / "proposal_recall.png"),
    }
    summary = {
        "command": command,
        "weights": weights,
        "models": {n: {k: v for k, v in r.items() if k != "records"} for n, r in results.items()},
    }
    paths["metrics"].write_text(json.dumps(summary, indent=1))
    for name, result in results.items():
        paths[f"records-{name}"] = out_dir / f"records-{name}.json"
        paths[f"records-{name}"].write_text(json.dumps(result["records"]))
        paths[f"per_class_iou-{name}"] = plots.plot_per_class_iou(
            result, out_dir / f"per_class_iou-{name}.png", f"{name}: semantic IoU per class"
        )
    paths["report"].write_text(markdown_report(results, command, weights, examples))
    return paths


# --- bag evaluation (pmp-eval-bag) ------------------------------------------------------------------


def bag_markdown(report: dict) -> str:
    """The human-readable summary of one bag's evaluation (pmp-eval-bag)."""
    lat, acc = report["latency_ms"], report.get("accuracy")
    lines = [
        f"# Evaluation of `{report['bag']}`",
        "",
        f"Mode: **{report['mode']}**; model `{report['model']}`; {report['frames']} frames published, "
        f"{report['results']} results, **{report['dropped']} dropped** ({format_value(report['drop_rate'])}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| latency p50 / p90 / p99 (ms) | "
        f"{format_value(lat['p50'], 1)} / {format_value(lat['p90'], 1)} / {format_value(lat['p99'], 1)} |",
        f"| latency max (ms) | {format_value(lat['max'], 1)} |",
        f"| input rate (frames/s) | {format_value(report['input_rate_hz'], 2)} |",
        f"| throughput (results/s) | {format_value(report['throughput_hz'], 2)} |",
    ]
    if acc:
        a = acc["all"]
        lines += [
            f"| instruction precision / recall / F1 (IoU 0.5) | "
            f"{format_value(a['precision'])} / {format_value(a['recall'])} / "
            f"{format_value(a['f1'])} |",
            f"| mean target IoU | {format_value(a['mean_target_iou'])} |",
            f"| points inside the target | {format_value(a['points_inside_share'])} ({a['points_total']} points) |",
            f"| 3D error median (m) | "
            f"{format_value(a['error_3d_m']['median'], 4)} ({a['error_3d_m']['count']} points) |",
            f"| frames evaluated (with ground truth and result) | {acc['frames']} |",
        ]
        for split in ("seen", "unseen", "other"):
            if acc[split]["targets"] or acc[split]["fp"]:
                s = acc[split]
                lines.append(f"| F1 {split} classes ({s['targets']} targets) | {format_value(s['f1'])} |")
    else:
        lines += ["", f"Accuracy not measured: {report.get('accuracy_note', 'no ground truth')}."]
    lines += ["", "## 3D objects of matched targets (the node's objects against the ground truth's solids)", ""]
    if report["objects_3d"]:
        lines += [f"{report['objects_3d_note']}.", ""] + objects_3d_lines(report["objects_3d"])
    else:
        lines += [f"3D errors not measured: {report['objects_3d_note']}."]
    lines += ["", "## Tracking (identities of the targets over the frames)", ""]
    if report["tracking"]:
        lines += [f"{report['tracking_note']}.", ""] + tracking_lines(report["tracking"])
    else:
        lines += [f"Tracking metrics {report['tracking_note']}."]
    if report["problems"]:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in report["problems"]]
    lines += [
        "",
        "Latency = result received - image published (same clock, this machine). Dropped = published "
        "images without a result (the node keeps only the newest frame).",
        "",
    ]
    return "\n".join(lines)


_TRACKING_ROWS = (
    ("IDF1", "idf1"),
    ("ID switches", "num_switches"),
    ("MOTA", "mota"),
    ("false positives", "num_false_positives"),
    ("misses", "num_misses"),
    ("target flicker rate", "flicker_rate"),
    ("dropouts (target gone from the output and back)", "dropouts"),
    ("visible target frames", "visible_target_frames"),
    ("sequences", "sequences"),
)


def tracking_lines(tracking: dict) -> list[str]:
    """Markdown of pmp-eval-bag's tracking figures: one column per output (e.g. with_tracking,
    without_tracking: a track_metrics summary, or None when not measured), one row per metric."""
    columns = list(tracking)
    rows = [
        [label, *(None if tracking[c] is None else tracking[c][key] for c in columns)] for label, key in _TRACKING_ROWS
    ]
    return markdown_table(["figure", *(c.replace("_", " ") for c in columns)], rows)


def write_bag_report(report: dict, frames: list[dict], out_dir: Path) -> Path:
    """A bag evaluation's report.json (report + per-frame rows), report.md and latency plots in out_dir;
    returns report.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {**report, "plots": plots.plot_latency(frames, out_dir) if frames else []}
    path = out_dir / "report.json"
    path.write_text(json.dumps({**report, "per_frame": frames}, indent=1))
    (out_dir / "report.md").write_text(bag_markdown(report))
    return path
