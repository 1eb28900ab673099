"""The ROS-workspace route: colcon builds both packages and the built messages import from there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLCON = Path(sys.executable).parent / "colcon"


@pytest.mark.slow
@pytest.mark.skipif(not COLCON.exists() and shutil.which("colcon") is None, reason="colcon not installed")
def test_colcon_builds_packages_into_a_workspace(tmp_path):
    colcon = str(COLCON) if COLCON.exists() else shutil.which("colcon")
    prefix = os.environ.get("AMENT_PREFIX_PATH") or sys.prefix  # a ROS install, or the PyPI-wheel venv
    env = {
        **os.environ,
        "AMENT_PREFIX_PATH": prefix,
        "CMAKE_PREFIX_PATH": prefix,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    # The README's colcon line: the message package sits inside the pmp_ros folder, so it is named.
    build = subprocess.run(
        [
            colcon,
            "--log-base",
            "log",
            "build",
            "--base-paths",
            str(REPO),
            str(REPO / "msg"),
            "--cmake-args",
            "-DBUILD_TESTING=OFF",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "2 packages finished" in build.stdout, build.stdout

    probe = (
        "import pmp_ros_msgs.msg as m, pmp_ros_msgs; "
        "from ament_index_python.packages import get_package_share_directory as share; "
        "print(pmp_ros_msgs.__file__); print(share('pmp_ros')); print(share('pmp_ros_msgs')); "
        "print(m.SegmentationResult().__class__.__name__)"
    )
    result = subprocess.run(
        ["bash", "-c", f'source install/setup.bash && {sys.executable} -c "{probe}"'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    module_file, pmp_share, msgs_share, name = result.stdout.split()
    install = str(tmp_path / "install")
    assert module_file.startswith(install), module_file
    assert pmp_share.startswith(install) and msgs_share.startswith(install)
    assert name == "SegmentationResult"
    assert (Path(pmp_share) / "config" / "pmp.yaml").is_file()
    assert (Path(pmp_share) / "launch" / "pmp.launch.py").is_file()
    assert (tmp_path / "install" / "pmp_ros" / "lib" / "pmp_ros" / "pmp_node").is_file()
