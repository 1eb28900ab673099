"""Two variants of a model over several seeds, on the same evaluation scenes: mean and spread over seeds, and
a paired bootstrap over scenes for the difference of each headline metric.

    python -m pmp_ros.eval.ablation --a runs/ablation_side/eval_pmp --b runs/ablation_side/eval_twin \
        --names pmp twin --out runs/ablation_side/ablation

--a / --b are pmp-eval output folders (records-<model>.json per model, one model per seed, the same scenes
in every file). Models pair by the seed suffix of their names (`pmp_s0` with `twin_s0`); a variant's
figure is the mean over its seeds. The bootstrap draws the scenes with replacement (--resamples times, the
same draw for every model, since every model saw the same scenes) and recomputes each variant's
seed-mean from the pooled counts of the drawn scenes; the interval is the 2.5 and 97.5 percentiles of the
difference a - b. It covers the scene sampling; the seed spread is shown beside it, since 3 seeds are too
few to bootstrap over.

Metrics, as pmp-eval defines them (docs/evaluation.md), micro-averaged over the drawn scenes: instruction
F1@0.5 on seen / unseen classes and in simple / cluttered scenes, mean target IoU, proposal recall at 1 and
5 queries.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from pmp_ros.eval.metrics.bootstrap import interval, pooled, unit_draws

# table row -> column of scene_counts whose pooled ratio is the metric
METRICS = {
    "F1 seen": "f1_seen",
    "F1 unseen": "f1_unseen",
    "F1 simple scenes": "f1_simple",
    "F1 cluttered scenes": "f1_cluttered",
    "mean target IoU": "target_iou",
    "proposal R@1": "recall_1",
    "proposal R@5": "recall_5",
}
F1_GROUPS = {  # F1 metric -> which targets / predictions of which scenes count
    "f1_seen": lambda rec, item: item["split"] == "seen",
    "f1_unseen": lambda rec, item: item["split"] == "unseen",
    "f1_simple": lambda rec, item: not rec["cluttered"],
    "f1_cluttered": lambda rec, item: rec["cluttered"],
}
SEED_SUFFIX = re.compile(r"_s(\d+)$")


def scene_counts(records: list[dict]) -> dict[str, np.ndarray]:
    """Per scene the numerator and denominator of every metric: {column: float [S, 2]}. F1 = 2tp / (2tp +
    fp + fn) pools as (2tp, 2tp + fp + fn); a prediction counts in a class split by its predicted label, as in
    frame_metrics.aggregate_instruction_metrics."""
    out: dict[str, list[tuple[float, float]]] = {column: [] for column in METRICS.values()}
    for rec in records:
        for column, keep in F1_GROUPS.items():
            targets = [t for t in rec["targets"] if keep(rec, t)]
            tp = sum(t["matched"] for t in targets)
            fp = sum(p["matched_target"] is None for p in rec["predictions"] if keep(rec, p))
            out[column].append((2 * tp, 2 * tp + fp + (len(targets) - tp)))
        targets = rec["targets"]
        out["target_iou"].append((sum(t["best_iou"] for t in targets), len(targets)))
        for k in (1, 5):
            covered = sum(0 <= t["proposal_rank"] < k for t in targets)
            out[f"recall_{k}"].append((covered, len(targets)))
    return {column: np.asarray(pairs, dtype=np.float64) for column, pairs in out.items()}


def load_variant(folder: Path) -> dict[int, list[dict]]:
    """{seed: records} of the records-<name>_s<seed>.json files in a pmp-eval output folder."""
    runs = {}
    for path in sorted(folder.glob("records-*.json")):
        match = SEED_SUFFIX.search(path.stem)
        if match is None:
            raise SystemExit(f"{path}: model name has no _s<seed> suffix")
        runs[int(match.group(1))] = json.loads(path.read_text())
    if not runs:
        raise SystemExit(f"{folder}: no records-*.json (pmp-eval writes them)")
    return runs


def compare(a: dict[int, list[dict]], b: dict[int, list[dict]], resamples: int = 2000, seed: int = 0) -> dict:
    """Per metric: each variant's per-seed values, mean and sample std over seeds, the difference of the
    means a - b and its paired bootstrap 95 % interval over scenes. Both variants must have the same seeds
    and the same scenes (checked by scene seed)."""
    if sorted(a) != sorted(b):
        raise ValueError(f"seeds differ: {sorted(a)} vs {sorted(b)}")
    scenes = [r["seed"] for r in a[min(a)]]
    for runs in (a, b):
        for s, records in runs.items():
            if [r["seed"] for r in records] != scenes:
                raise ValueError(f"seed {s}: evaluated on other scenes than the rest")
    counts = {v: {s: scene_counts(r) for s, r in runs.items()} for v, runs in (("a", a), ("b", b))}
    draws = unit_draws(len(scenes), resamples, seed)
    full = np.ones((1, len(scenes)))
    out = {"seeds": sorted(a), "scenes": len(scenes), "resamples": resamples, "metrics": {}}
    for name, column in METRICS.items():
        entry = {}
        boot = {}
        for v in ("a", "b"):
            per_seed = [float(pooled(full, counts[v][s][column])[0]) for s in sorted(a)]
            entry[v] = {
                "per_seed": per_seed,
                "mean": float(np.mean(per_seed)),
                "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
            }
            boot[v] = np.mean([pooled(draws, counts[v][s][column]) for s in sorted(a)], axis=0)
        difference = boot["a"] - boot["b"]
        entry["difference"] = entry["a"]["mean"] - entry["b"]["mean"]
        entry["ci95"] = interval(difference)
        entry["share_a_better"] = float(np.mean(difference[~np.isnan(difference)] > 0))
        out["metrics"][name] = entry
    return out


def markdown(result: dict, names: tuple[str, str], command: str) -> str:
    a, b = names
    lines = [
        f"# {a} against {b}: {len(result['seeds'])} seeds each, {result['scenes']} scenes",
        "",
        f"Command: `{command}`",
        "",
        f"Mean over seeds {result['seeds']} (sample std); difference {a} - {b} of the means with the 95 % "
        f"interval of a paired bootstrap over scenes ({result['resamples']} draws); 'bootstrap share' is the "
        f"share of draws where {a} is ahead.",
        "",
        f"| metric | {a} | {b} | {a} - {b} | 95 % CI | bootstrap share | {a} per seed | {b} per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["metrics"].items():

        def cell(v: dict) -> str:
            return f"{v['mean']:.3f} ± {v['std']:.3f}" if v["std"] is not None else f"{v['mean']:.3f}"

        seeds = [", ".join(f"{x:.3f}" for x in m[v]["per_seed"]) for v in ("a", "b")]
        low, high = m["ci95"]
        lines.append(
            f"| {name} | {cell(m['a'])} | {cell(m['b'])} | {m['difference']:+.3f} | [{low:+.3f}, {high:+.3f}] "
            f"| {m['share_a_better']:.2f} | {seeds[0]} | {seeds[1]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="pmp-eval folder of the first variant")
    parser.add_argument("--b", type=Path, required=True, help="pmp-eval folder of the second variant")
    parser.add_argument("--names", nargs=2, default=("a", "b"), help="the variants' names in the table")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    result = compare(load_variant(args.a), load_variant(args.b), args.resamples)
    result["names"] = list(args.names)
    command = "python -m pmp_ros.eval.ablation " + shlex.join(sys.argv[1:] if argv is None else argv)
    result["command"] = command
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    table = markdown(result, tuple(args.names), command)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
