"""Training curves of one or more runs in one PNG: the loss (their log.jsonl), or with --snapshots the
quality of the models a run kept along the way (train.snapshot_every) on the validation split.

python -m pmp_ros.eval.curves runs/pmp_s0 runs/twin_s0 runs/pmp_s1 runs/twin_s1 --out curves.png
python -m pmp_ros.eval.curves runs/pmp_side --snapshots --scenes 100 --out learning_curve.png  # + .json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def plot_curves(runs: list[Path], out: Path, smooth: int = 5) -> Path:
    """Total training loss against step per run (moving average over `smooth` logged points)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in records]
        losses = [r["loss"] for r in records]
        averaged = [
            sum(losses[max(0, i - smooth + 1) : i + 1]) / len(losses[max(0, i - smooth + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, averaged, label=run.name, linestyle="-" if "twin" not in run.name else "--")
    ax.set_xlabel("step")
    ax.set_ylabel(f"total loss (moving average of {smooth} logs)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


LEARNING_METRICS = ("F1@0.5", "mean target IoU", "proposal recall@16")


def snapshot_quality(run: Path, scenes: int, device: str = "cpu", every: int = 0) -> list[dict]:
    """Per snapshot of `run` (snapshots/step_*.safetensors, in step order; with `every`, only the steps that
    are multiples of it): the step and the instruction F1, mean target IoU and proposal recall at all
    queries on the first `scenes` VALIDATION scenes."""
    from pmp_ros.eval.evaluate import evaluate
    from pmp_ros.model.segmenter import load_segmenter

    rows = []
    for path in sorted((run / "snapshots").glob("step_*.safetensors")):
        step = int(path.stem.removeprefix("step_"))
        if every and step % every:
            continue
        model, cfg = load_segmenter(path, device)
        result = evaluate(model, cfg, scenes, device=device, progress=False, split="validation")
        instruction = result["instruction"]["all"]
        rows.append(
            {
                "step": step,
                "F1@0.5": instruction["f1"],
                "mean target IoU": instruction["mean_target_iou"],
                "proposal recall@16": result["proposals"]["all"]["recall"]["all"],
            }
        )
    return rows


def plot_learning_curves(curves: dict[str, list[dict]], out: Path) -> Path:
    """One panel per metric of LEARNING_METRICS against step, a line per run; the rows beside it as JSON."""
    fig, axes = plt.subplots(1, len(LEARNING_METRICS), figsize=(4 * len(LEARNING_METRICS), 3.5))
    for ax, metric in zip(axes, LEARNING_METRICS):
        for name, rows in curves.items():
            ax.plot([r["step"] for r in rows], [r[metric] or 0.0 for r in rows], marker="o", label=name)
        ax.set_xlabel("step")
        ax.set_title(f"{metric} (validation)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    out.with_suffix(".json").write_text(json.dumps(curves, indent=1))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="training curves of runs")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--snapshots", action="store_true", help="evaluate the runs' snapshots instead")
    parser.add_argument("--scenes", type=int, default=100, help="--snapshots: validation scenes per snapshot")
    parser.add_argument("--every", type=int, default=0, help="--snapshots: only steps that are multiples of it")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.snapshots:
        curves = {run.name: snapshot_quality(run, args.scenes, args.device, args.every) for run in args.runs}
        print(plot_learning_curves(curves, args.out))
    else:
        print(plot_curves(args.runs, args.out))


if __name__ == "__main__":
    main()
