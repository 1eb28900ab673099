"""The ablation's statistics: per-scene counts reproduce pmp-eval's pooled metrics, the paired bootstrap
finds a real difference and none between equal variants, and the command writes its table."""

import json

import numpy as np
import pytest

from pmp_ros.eval.ablation import compare, main, scene_counts
from pmp_ros.eval.metrics.frame_metrics import aggregate_instruction_metrics


def _record(seed: int, rng: np.random.Generator, hit_rate: float) -> dict:
    """A pmp-eval record with the fields the ablation reads: 1-4 targets, seen or unseen, matched with
    probability hit_rate, and a false positive now and then."""
    targets = []
    for i in range(int(rng.integers(1, 5))):
        matched = bool(rng.random() < hit_rate)
        targets.append(
            {
                "id": i,
                "split": "unseen" if rng.random() < 0.3 else "seen",
                "matched": matched,
                "best_iou": float(rng.uniform(0.5, 1.0) if matched else rng.uniform(0.0, 0.5)),
                "proposal_rank": int(rng.integers(0, 3)) if matched else -1,
                "points_inside": 0,
                "points_total": 0,
                "errors_3d": [],
            }
        )
    predictions = [{"split": t["split"], "matched_target": t["id"]} for t in targets if t["matched"]]
    if rng.random() < 0.2:
        predictions.append({"split": "seen", "matched_target": None})
    return {"seed": seed, "cluttered": seed % 2 == 1, "targets": targets, "predictions": predictions}


def _variant(hit_rate: float, seeds=(0, 1, 2), scenes: int = 200) -> dict[int, list[dict]]:
    return {
        s: [_record(900 + i, np.random.default_rng([s, i, int(hit_rate * 100)]), hit_rate) for i in range(scenes)]
        for s in seeds
    }


def test_scene_counts_pool_to_pmp_evals_metrics():
    records = _variant(0.6, seeds=(0,))[0]
    counts = scene_counts(records)
    pooled = aggregate_instruction_metrics(records)
    for column, split in (("f1_seen", "seen"), ("f1_unseen", "unseen")):
        assert counts[column][:, 0].sum() / counts[column][:, 1].sum() == pytest.approx(pooled[split]["f1"])
    iou = counts["target_iou"]
    assert iou[:, 0].sum() / iou[:, 1].sum() == pytest.approx(pooled["all"]["mean_target_iou"])


def test_bootstrap_separates_a_better_variant_and_not_equal_ones():
    better, worse = _variant(0.8), _variant(0.4)
    result = compare(better, worse, resamples=500)
    for name, m in result["metrics"].items():
        low, high = m["ci95"]
        assert low <= m["difference"] <= high, name
        assert low > 0, f"{name}: a real difference must be found, CI {low, high}"
        assert len(m["a"]["per_seed"]) == 3 and m["a"]["std"] > 0
    same = compare(better, better, resamples=200)
    assert all(m["difference"] == 0 and m["ci95"] == [0.0, 0.0] for m in same["metrics"].values())


def test_variants_must_share_seeds_and_scenes():
    with pytest.raises(ValueError, match="seeds differ"):
        compare(_variant(0.5, seeds=(0, 1)), _variant(0.5, seeds=(0, 2)), resamples=10)
    other = _variant(0.5, seeds=(0,))
    other[0] = other[0][1:] + other[0][:1]
    with pytest.raises(ValueError, match="other scenes"):
        compare(_variant(0.5, seeds=(0,)), other, resamples=10)


def test_command_writes_table_and_json(tmp_path, capsys):
    for folder, name, hit_rate in (("a", "pmp", 0.7), ("b", "twin", 0.5)):
        (tmp_path / folder).mkdir()
        for seed, records in _variant(hit_rate, scenes=50).items():
            (tmp_path / folder / f"records-{name}_s{seed}.json").write_text(json.dumps(records))
    out = tmp_path / "ablation"
    main(
        [
            "--a",
            str(tmp_path / "a"),
            "--b",
            str(tmp_path / "b"),
            "--names",
            "pmp",
            "twin",
            "--out",
            str(out),
            "--resamples",
            "100",
        ]
    )
    table = out.with_suffix(".md").read_text()
    assert "| F1 unseen |" in table and "pmp - twin" in table and "--resamples 100" in table
    assert json.loads(out.with_suffix(".json").read_text())["seeds"] == [0, 1, 2]
    (tmp_path / "a" / "records-pmp.json").write_text("[]")
    with pytest.raises(SystemExit, match="no _s<seed> suffix"):
        main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--out", str(out)])
