"""images_missing counts gaps in the camera's own stamps relative to its recent rate: a camera that lowers its
rate loses nothing (issue #26: 145 frames were counted missing when a camera went from 30 to 10 Hz)."""

from pmp_ros.ros.pipeline import ArrivalCounter


def _stamps(start, rate_hz, count):
    return [start + i / rate_hz for i in range(count)]


def test_a_lowered_rate_is_not_a_loss():
    counter = ArrivalCounter()
    stamps = _stamps(100.0, 30.0, 60)
    stamps += _stamps(stamps[-1] + 0.1, 10.0, 60)  # the camera goes to 10 Hz for 6 s
    for stamp in stamps:
        counter.add(stamp)
    assert counter.missing == 0 and counter.received == 120
    assert abs(counter.rate_hz() - 10.0) < 0.5  # the new rate, learnt afresh


def test_a_raised_rate_then_losses_are_counted_at_the_new_rate():
    counter = ArrivalCounter()
    for stamp in _stamps(100.0, 10.0, 20) + _stamps(102.0, 30.0, 20):
        counter.add(stamp)
    assert counter.missing == 0
    late = _stamps(102.0 + 20 / 30, 30.0, 30)  # the same camera on at 30 Hz
    lost = {5, 11, 12}
    confirmed = sum(counter.add(s) for i, s in enumerate(late) if i not in lost)
    assert confirmed == counter.missing == 3


def test_losses_at_a_steady_rate_are_counted_once_the_camera_is_back_at_its_rate():
    counter = ArrivalCounter()
    stamps = _stamps(100.0, 30.0, 40)
    lost = {10, 20, 21, 30}
    found = [counter.add(s) for i, s in enumerate(stamps) if i not in lost]
    assert counter.missing == 4 and sum(found) == 4
    assert found[10] == 0 and found[11] == 1  # frame 11 (after the gap) says nothing yet; frame 12 confirms it
