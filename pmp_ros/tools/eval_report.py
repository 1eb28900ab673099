"""Reports of a bag evaluation: JSON (everything), Markdown (headline figures and problems), PNG plots
(latency histogram and timeline with dropped frames marked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def latency_summary(latencies_s: list[float]) -> dict:
    """Milliseconds: p50/p90/p95/p99, mean, max (None without any result)."""
    if not latencies_s:
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None, "max": None}
    ms = np.asarray(latencies_s) * 1e3
    return {f"p{p}": float(np.percentile(ms, p)) for p in PERCENTILES} | {"mean": float(ms.mean()),
                                                                            "max": float(ms.max())}


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(report: dict) -> str:
    """The human-readable summary of one bag's report."""
    lat, acc = report["latency_ms"], report.get("accuracy")
    lines = [f"# Evaluation of `{report['bag']}`", "",
             f"Mode: **{report['mode']}**; model `{report['model']}`; {report['frames']} frames published, "
             f"{report['results']} results, **{report['dropped']} dropped** ({_fmt(report['drop_rate'])}).", "",
             "| figure | value |", "|---|---|",
             f"| latency p50 / p90 / p99 (ms) | {_fmt(lat['p50'], 1)} / {_fmt(lat['p90'], 1)} / {_fmt(lat['p99'], 1)} |",
             f"| latency max (ms) | {_fmt(lat['max'], 1)} |",
             f"| input rate (frames/s) | {_fmt(report['input_rate_hz'], 2)} |",
             f"| throughput (results/s) | {_fmt(report['throughput_hz'], 2)} |",
             f"| resent images (lockstep) | {report['resends']} |"]
    if acc:
        a = acc["all"]
        lines += [f"| instruction precision / recall / F1 (IoU 0.5) | {_fmt(a['precision'])} / {_fmt(a['recall'])} / "
                  f"{_fmt(a['f1'])} |",
                  f"| mean target IoU | {_fmt(a['mean_target_iou'])} |",
                  f"| points inside the target | {_fmt(a['points_inside_share'])} ({a['points_total']} points) |",
                  f"| 3D error median (m) | {_fmt(a['error_3d_m']['median'], 4)} ({a['error_3d_m']['count']} points) |",
                  f"| frames evaluated (with ground truth and result) | {acc['frames']} |"]
        for split in ("seen", "unseen", "other"):
            if acc[split]["targets"] or acc[split]["fp"]:
                s = acc[split]
                lines.append(f"| F1 {split} classes ({s['targets']} targets) | {_fmt(s['f1'])} |")
    else:
        lines += ["", f"Accuracy not measured: {report.get('accuracy_note', 'no ground truth')}."]
    if report["problems"]:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in report["problems"]]
    lines += ["", "Latency = result received - image published (same clock, this machine). Dropped = published "
              "images without a result (the node keeps only the newest frame).", ""]
    return "\n".join(lines)


def plot_latency(frames: list[dict], out_dir: Path) -> list[str]:
    """latency_hist.png and latency_timeline.png; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    answered = [f for f in frames if f["latency_ms"] is not None]
    dropped = [f for f in frames if f["latency_ms"] is None]
    names = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist([f["latency_ms"] for f in answered], bins=40, color="tab:blue")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"latency, {len(answered)} results, {len(dropped)} dropped")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_hist.png", dpi=100)
    plt.close(fig)
    names.append("latency_hist.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([f["published_s"] for f in answered], [f["latency_ms"] for f in answered], ".", ms=3, label="result")
    if dropped:
        ax.plot([f["published_s"] for f in dropped], [0] * len(dropped), "x", color="tab:red", ms=4, label="dropped")
    ax.set_xlabel("published at (s since start)")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_timeline.png", dpi=100)
    plt.close(fig)
    names.append("latency_timeline.png")
    return names


def write_report(report: dict, frames: list[dict], out_dir: Path) -> Path:
    """report.json (report + per-frame rows), report.md and the plots in out_dir; returns report.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {**report, "plots": plot_latency(frames, out_dir) if frames else []}
    path = out_dir / "report.json"
    path.write_text(json.dumps({**report, "per_frame": frames}, indent=1))
    (out_dir / "report.md").write_text(markdown(report))
    return path
