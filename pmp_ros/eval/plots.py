"""Evaluation plots (matplotlib, Agg backend: no display needed): per-class IoU, proposal recall, overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from pmp_ros.data import vocabulary  # noqa: E402

SEEN_COLOUR, UNSEEN_COLOUR = "tab:blue", "tab:orange"


def plot_per_class_iou(result: dict, path: Path, title: str) -> Path:
    """Bar chart of semantic IoU per vocabulary class, seen / unseen coloured; absent classes left empty."""
    per_class = result["semantic"]["per_class_iou"]
    names = list(per_class)
    values = [per_class[n] if per_class[n] is not None else 0.0 for n in names]
    colours = [UNSEEN_COLOUR if vocabulary.is_unseen(n) else SEEN_COLOUR for n in names]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.16 * len(names)), 4.0))
    ax.bar(np.arange(len(names)), values, color=colours)
    ax.set_xticks(np.arange(len(names)), names, rotation=90, fontsize=5)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title(title)
    ax.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in (SEEN_COLOUR, UNSEEN_COLOUR)], labels=["seen", "unseen"]
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_proposal_recall(results: dict[str, dict], path: Path) -> Path:
    """Proposal recall against K, one line per model (the last point is K = every query)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.5))
    for name, result in results.items():
        recall = result["proposals"]["all"]["recall"]
        ks = [result["proposals"]["num_queries"] if k == "all" else int(k) for k in recall]
        ax.plot(ks, [v if v is not None else np.nan for v in recall.values()], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("K (top proposals by p(target class))")
    ax.set_ylabel("recall (IoU >= 0.5)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_example(
    rgb: np.ndarray,
    label_image: np.ndarray,
    instances: list[tuple[int, str, float]],
    points: list[tuple[int, int, int, tuple[float, float, float] | None]],
    text: str,
    path: Path,
) -> Path:
    """The image with predicted masks tinted, each instance's point and label, and the instruction.

    rgb: uint8 [H,W,3]; label_image: uint16 [H,W]; instances / points as in FramePrediction."""
    overlay = rgb.astype(np.float32) / 255.0
    palette = plt.get_cmap("tab10")
    for k, (instance_id, _, _) in enumerate(instances):
        mask = label_image == instance_id
        overlay[mask] = 0.5 * overlay[mask] + 0.5 * np.asarray(palette(k % 10)[:3])
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.imshow(overlay)
    names = {i: (label, score) for i, label, score in instances}
    for instance_id, u, v, xyz in points:
        label, score = names[instance_id]
        depth = f" z={xyz[2]:.2f}m" if xyz is not None else ""
        ax.plot(u, v, marker="+", color="white", markersize=10, mew=2)
        ax.text(
            u + 3,
            v - 3,
            f"{label} {score:.2f}{depth}",
            color="white",
            fontsize=7,
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1},
        )
    ax.set_title(text, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_latency(frames: list[dict], out_dir: Path) -> list[str]:
    """latency_hist.png and latency_timeline.png; returns the file names written."""
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
