"""The frame pipeline, without ROS: a camera frame and an instruction in, the published results out.

frame.py (FramePipeline: plan the prompts, predict, track or threshold, resolve, locate, measure) and
tracking_stage.py (a camera stream's tracker). The node (pmp_ros.ros), the demo and bag replays through it,
and every evaluation of the frame path (pmp_ros.eval) call this one code.
"""
