"""pmp_ros: an ament_python package that also installs with plain pip (see README)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "pmp_ros"

# Console scripts. launch_ros finds them in lib/pmp_ros (setup.cfg).
CONSOLE_SCRIPTS = [
    "pmp_node = pmp_ros.ros.node:main",
    "pmp-train-clip = pmp_ros.train.clip_pretrain:main",
    "pmp-train = pmp_ros.train.train_pmp:main",
    "pmp-eval = pmp_ros.eval.cli:main",
    "pmp-convert-fcclip = pmp_ros.model.fcclip_import:main",
    "pmp-write-bag = pmp_ros.bags.writer:main",
    "pmp-eval-bag = pmp_ros.bags.evaluate:main",
    "pmp-demo = pmp_ros.demo:main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Instruction-guided open-vocabulary segmentation (Prompt-guided Mask Proposal) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.model.clip": ["configs/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    # Ranges for users; requirements/constraints.txt pins the tested set. ROS packages (rclpy, messages)
    # come from the ROS distribution or from requirements/ros-pypi.txt, not from here.
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "torchvision>=0.16",
        "open_clip_torch>=2.23",
        "opencv-python-headless>=4.8",
        "scipy>=1.10",
        "safetensors>=0.4",
        "rosbags>=0.10",
        "mcap>=1.2,<2",
        "zstandard>=0.20",
        "lz4>=4",
        "pycocotools>=2.0.8,<3",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "imageio>=2.30",
        "pyyaml>=6",
    ],
    extras_require={"test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    zip_safe=False,
)
