"""pmp_ros: an ament_python package that also installs with plain pip (see README)."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "pmp_ros"


def _requirements() -> tuple[list[str], list[str]]:
    """(runtime, test) requirements: requirements/python.txt before and after its "# tests and tools" line."""
    runtime, test = [], []
    current = runtime
    for line in (Path(__file__).parent / "requirements" / "python.txt").read_text().splitlines():
        if line.strip() == "# tests and tools":
            current = test
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            current.append(requirement)
    return runtime, test


RUNTIME_REQUIREMENTS, TEST_REQUIREMENTS = _requirements()

# Console scripts. launch_ros finds them in lib/pmp_ros (setup.cfg).
CONSOLE_SCRIPTS = [
    "pmp_node = pmp_ros.ros.quiet_stop:console_main",
    "pmp-train-clip = pmp_ros.train.clip_pretrain:main",
    "pmp-train = pmp_ros.train.train_pmp:main",
    "pmp-eval = pmp_ros.eval.cli:main",
    "pmp-convert-fcclip = pmp_ros.model.fcclip_import:main",
    "pmp-export-onnx = pmp_ros.deploy.export:main",
    "pmp-write-bag = pmp_ros.bags.writer:main",
    "pmp-eval-bag = pmp_ros.bags.evaluate:main",
    "pmp-demo = pmp_ros.demo:main",
    "pmp-instruct = pmp_ros.ros.commands:instruct_main",
    "pmp-segment = pmp_ros.ros.commands:segment_main",
    "pmp-watch = pmp_ros.ros.commands:watch_main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Instruction-guided open-vocabulary segmentation (Prompt-guided Mask Proposal) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.11",  # scripts/setup.sh: the PyPI ROS wheels are cp311; ROS distributions 3.11+
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.model.clip": ["configs/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (
            f"share/{PACKAGE}/config",
            glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.json") + glob("config/*.rviz"),
        ),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    # Ranges for users from requirements/python.txt (constraints.txt pins the tested set). ROS packages
    # (rclpy, messages) come from the ROS distribution or from requirements/ros-pypi.txt, not from here.
    install_requires=RUNTIME_REQUIREMENTS,
    extras_require={"test": TEST_REQUIREMENTS},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    zip_safe=False,
)
