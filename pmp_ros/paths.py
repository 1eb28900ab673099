"""Where the package's installed files are: launch files, configs, shipped models.

Installed by colcon, they live in the ament share folder (share/pmp_ros); in a source checkout
installed with pip, they are the repository's own folders. One function decides, for every caller.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PACKAGE = "pmp_ros"
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """The folder holding config/, launch/ and models/ of this installation."""
    if (_SOURCE_ROOT / "package.xml").is_file() and (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError) as error:
        raise FileNotFoundError(
            f"cannot find the {PACKAGE} share folder: not a source checkout ({_SOURCE_ROOT}) and "
            f"not in the ament index ({error})"
        ) from error


def config_file(name: str) -> Path:
    return share_dir() / "config" / name


def model_file(name: str) -> Path:
    return share_dir() / "models" / name
