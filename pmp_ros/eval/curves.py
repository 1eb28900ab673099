"""Training curves of one or more runs (their log.jsonl) in one PNG.

python -m pmp_ros.eval.curves runs/pmp_s0 runs/twin_s0 runs/pmp_s1 runs/twin_s1 --out curves.png
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="training curves of runs")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(plot_curves(args.runs, args.out))


if __name__ == "__main__":
    main()
