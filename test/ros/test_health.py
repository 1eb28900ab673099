"""FrameHealth and DepthHealth (pmp_ros/ros/health.py): what the diagnostics say when every frame of a camera
was rejected lately, or depth was never usable (issue #26 item 3)."""

from pmp_ros.ros.health import HEALTH_WINDOW_S, REASON_LENGTH, DepthHealth, FrameHealth


def test_a_camera_whose_every_recent_frame_was_rejected_is_a_problem_with_the_reason():
    health = FrameHealth()
    assert health.problem(now=0.0) is None  # no frame: nothing to say (input_watch says that)
    for t in range(5):
        health.rejected(f"image 10x10 with encoding 'yuv{t}' not supported", now=float(t))
    text, failed = health.problem(now=5.0)
    assert "every frame of the last 5 s was rejected (5)" in text and "'yuv4'" in text and not failed
    health.used(now=5.5)
    assert health.problem(now=6.0) is None  # one good frame in the window
    assert health.problem(now=5.5 + HEALTH_WINDOW_S + 0.1) is None  # nothing left in the window


def test_the_node_failing_on_every_frame_is_its_own_failure():
    health = FrameHealth()
    health.rejected("x" * 10_000, failed=True, now=1.0)
    text, failed = health.problem(now=2.0)
    assert failed and "failed" in text and len(text) < REASON_LENGTH + 100


def test_depth_never_within_tolerance_says_by_how_much():
    health = DepthHealth()
    for t, offset in enumerate([-0.31, -0.30, -0.32]):
        health.out_of_tolerance(offset, 0.05, now=float(t))
    text = health.problem(now=3.0)
    assert "never within depth_max_age 0.050 s" in text and "0.320 s behind" in text  # the latest frame's
    health.used(now=3.1)
    assert health.problem(now=3.2) is None


def test_depth_without_calibration_is_said():
    health = DepthHealth()
    health.unusable("camera info without a calibration on depth/camera_info", now=0.0)
    assert "without a calibration" in health.problem(now=1.0)
