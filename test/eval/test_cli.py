"""pmp-eval's subcommands: each runs its experiment module as `python -m` does, and the old forms still work."""

import json
import subprocess
import sys

import pytest

from pmp_ros.eval.cli import EXPERIMENTS, SUBCOMMANDS, main


def test_a_subcommand_writes_what_its_python_m_form_writes(tmp_path):
    args = ["--scenes", "2", "--split", "validation"]
    assert main(["objects3d", *args, "--json", str(tmp_path / "new.json")]) == 0
    old = [sys.executable, "-m", "pmp_ros.eval.objects3d", *args, "--json", str(tmp_path / "old.json")]
    subprocess.run(old, check=True, capture_output=True, timeout=300)
    new, before = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("new", "old"))
    # The same experiment, recorded as its module's command.
    assert new.pop("command").replace("new.json", "old.json") == before.pop("command")
    assert new == before and new["summary"]["objects"] > 0


def test_every_experiment_subcommand_has_its_modules_help(capsys):
    assert set(SUBCOMMANDS) == {"instructions", "diagnose", *EXPERIMENTS}
    for name in EXPERIMENTS:
        with pytest.raises(SystemExit) as stop:
            main([name, "--help"])
        assert stop.value.code == 0 and "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out.split("subcommands:")[1]
    assert all(name in listed for name in SUBCOMMANDS)


def test_the_instruction_evaluations_flags_are_checked_with_or_without_its_subcommand(capsys):
    for argv in (["--scenes", "2"], ["instructions", "--scenes", "2"], ["diagnose", "--scenes", "2"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)  # --model is required
        assert stop.value.code == 2 and "--model" in capsys.readouterr().err
