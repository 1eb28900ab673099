"""Commands behave as command-line tools (issue 25): pmp_node --help prints its usage and exits without
starting a node; pmp-convert-fcclip's output is readable like any new file (not 0600)."""

import os
import stat
import subprocess
import sys

from pmp_ros.model.fcclip_import import main as convert_fcclip
from pmp_ros.ros import interface


def test_node_help_prints_usage_and_exits_without_starting():
    result = subprocess.run(
        [sys.executable, "-m", "pmp_ros.ros.node", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: pmp_node")
    for parameter in interface.PARAMETERS:
        assert f"  {parameter.name} " in result.stdout, parameter.name
    assert "ready" not in result.stdout + result.stderr


def test_converter_output_gets_a_new_files_mode(tmp_path):
    from fcclip_checkpoints import write_fcclip_checkpoint
    from model_fixtures import small_config

    cfg = small_config(pmp=False, pixel_decoder="msdeform")
    fcclip = write_fcclip_checkpoint(tmp_path / "fcclip.pth", cfg)
    out = tmp_path / "converted.safetensors"
    umask = os.umask(0o022)
    try:
        assert convert_fcclip([str(fcclip), str(out), "--clip-model", cfg.clip.model_name]) == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
