"""pmp_ros: Prompt-guided Mask Proposal (PMP) open-vocabulary segmentation for ROS 2 robots."""

__version__ = "0.1.0"
