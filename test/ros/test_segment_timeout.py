"""A segment request's timeout is checked and bounded before anyone waits on it (issue #26: a request with
timeout 1e10 or inf killed the service thread; 3600 s ones held the service's waiting places for an hour)."""

import math

import pytest

from pmp_ros.ros.pipeline import SEGMENT_TIMEOUT_MAX_S, segment_timeout


@pytest.mark.parametrize("requested", [0.0, 0.5, 2.0, SEGMENT_TIMEOUT_MAX_S])
def test_a_timeout_within_the_maximum_is_kept(requested):
    assert segment_timeout(requested) == requested  # 0 included: the node's segment_timeout then applies


@pytest.mark.parametrize("requested", [SEGMENT_TIMEOUT_MAX_S + 0.001, 3600.0, 1e10, 1.7e308])
def test_a_longer_timeout_is_clamped_to_the_maximum(requested):
    assert segment_timeout(requested) == SEGMENT_TIMEOUT_MAX_S
    assert segment_timeout(requested, maximum=5.0) == 5.0


@pytest.mark.parametrize("requested", [math.nan, math.inf, -math.inf, -0.001, -5.0])
def test_nan_infinite_and_negative_timeouts_are_refused_with_the_reason(requested):
    with pytest.raises(ValueError, match=f"timeout must be a finite number of seconds >= 0.*got {requested}"):
        segment_timeout(requested)


def test_the_clamped_timeout_can_be_waited_on():
    # threading.Event.wait raises OverflowError past about 9.2e9 s (what killed the service thread).
    import threading

    assert threading.Event().wait(segment_timeout(1e10, maximum=0.01)) is False
