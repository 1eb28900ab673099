"""Seeing the results: the overlay picture (overlay.py) and the Foxglove live view (live_view.py). ROS-free."""
