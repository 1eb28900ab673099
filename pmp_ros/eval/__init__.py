"""Evaluation: metrics, reports and plots (no ROS)."""
