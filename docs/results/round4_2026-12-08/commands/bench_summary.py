"""p50 per frame of bench_models.sh's JSON files, per round, and the ratios quoted in docs/results.md.

python docs/results/round4_2026-12-08/commands/bench_summary.py > docs/results/round4_2026-12-08/bench/summary.txt
"""

import json
import statistics
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
MODELS = ("issue_start", "before", "r4")


def p50(name: str, round_: int, stage: str) -> float:
    frames = json.loads((BENCH / f"{name}_r{round_}.json").read_text())["frames"]
    return next(f["median_ms"] for f in frames if f["stage"] == stage)


ratios_start, ratios_before = [], []
for r in (1, 2, 3):
    total = {n: p50(n, r, "total") for n in MODELS}
    ensemble = {n: p50(n, r, "ensemble") for n in MODELS}
    ratios_start.append(total["r4"] / total["issue_start"])
    ratios_before.append(total["r4"] / total["before"])
    print(
        f"round {r}: p50 total ms issue_start {total['issue_start']:.1f}, before {total['before']:.1f}, "
        f"r4 {total['r4']:.1f}; ensemble {ensemble['issue_start']:.1f} / {ensemble['before']:.1f} / "
        f"{ensemble['r4']:.1f}"
    )
print(
    "r4 / issue_start per round:",
    [round(x, 2) for x in ratios_start],
    "median",
    round(statistics.median(ratios_start), 2),
)
print(
    "r4 / before per round:", [round(x, 2) for x in ratios_before], "median", round(statistics.median(ratios_before), 2)
)
