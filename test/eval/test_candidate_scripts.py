"""The scripts that take a trained run to a shipping decision (scripts/choose_settings.sh, then
scripts/compare_to_shipped.sh) run end to end on a small real checkpoint and a few scenes: the copies carry
the settings asked for, and the reports and the paired table name every model."""

import os
import subprocess
import sys
from pathlib import Path

from pmp_ros.model.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, **env: str) -> str:
    environment = {**os.environ, "PMP_VENV": sys.prefix, "SCENES": "2", **env}
    result = subprocess.run(
        [str(ROOT / "scripts" / script)], env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_choose_settings_then_compare_to_shipped(model_file, tmp_path):
    tune = tmp_path / "tune"
    _run(
        "choose_settings.sh",
        RUN=str(model_file),
        SHIPPED=str(model_file),
        OUT=str(tune),
        SETTINGS="0.3:0.1 0.35:0.15",
        BETA="0.7",
    )

    for name, threshold, alpha in (("t0.3_a0.1", 0.3, 0.1), ("t0.35_a0.15", 0.35, 0.15)):
        cfg = read_checkpoint(tune / f"{name}.safetensors")[1]
        assert (cfg.inference.score_threshold, cfg.ensemble.alpha, cfg.ensemble.beta) == (threshold, alpha, 0.7)
    assert "t0.3_a0.1" in (tune / "eval_a" / "report.md").read_text()
    second = (tune / "eval_b" / "report.md").read_text()
    assert "t0.35_a0.15" in second and "shipped" in second

    compared = tmp_path / "compared"
    out = _run(
        "compare_to_shipped.sh",
        CANDIDATE=str(tune / "t0.3_a0.1.safetensors"),
        SHIPPED=str(model_file),
        OUT=str(compared),
    )
    table = (compared / "candidate_vs_shipped.md").read_text()
    assert "candidate against shipped" in table and "| F1 seen |" in table
    assert str(compared / "candidate_vs_shipped.md") in out
