"""Lint, format and layering checks of the whole repository (ruff.toml, .importlinter), and proof that a
layering violation fails the check."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(args, cwd=ROOT, **env):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(command):
    result = _run([str(BIN / "ruff"), *command])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_import_contracts_hold():
    result = _run([str(BIN / "lint-imports"), "--no-cache"])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_rclpy_import_in_the_model_breaks_the_contracts(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "pmp_ros", copy / "pmp_ros", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", copy / ".importlinter")
    (copy / "pmp_ros" / "model" / "ros_leak.py").write_text("import rclpy\n")
    result = _run([str(BIN / "lint-imports"), "--no-cache"], cwd=copy, PYTHONPATH=str(copy))
    assert result.returncode != 0
    assert "pmp_ros.model is not allowed to import rclpy" in result.stdout
    assert "pmp_ros.model.ros_leak -> rclpy" in result.stdout
