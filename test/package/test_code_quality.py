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


# The most lines a class of the package may span (issue 27): a class a reader can hold in mind at once.
MAX_CLASS_LINES = 300


def test_no_class_of_the_package_is_over_the_line_limit():
    import ast

    long_classes = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((ROOT / "pmp_ros").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert not long_classes, f"classes over {MAX_CLASS_LINES} lines: {long_classes}"


def test_the_node_module_keeps_to_the_lifecycle_model_and_worker_loop():
    lines = (ROOT / "pmp_ros" / "ros" / "node.py").read_text().count("\n")
    assert lines <= 400, f"pmp_ros/ros/node.py has {lines} lines (at most 400: issue 27's split by concern)"
