"""Interior points, robust depth and back-projection."""

import numpy as np
import pytest

from pmp_ros.geometry import backproject, depth_at, depth_in_metres, interior_point, locate_instances

K = np.array([500.0, 0, 320, 0, 500.0, 240, 0, 0, 1])


def _ring(h=60, w=80, centre=(30, 40), inner=10, outer=20):
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - centre[0], xx - centre[1])
    return (r >= inner) & (r <= outer)


def test_interior_point_of_a_ring_is_inside_unlike_its_centroid():
    ring = _ring()
    ys, xs = np.nonzero(ring)
    centroid = (int(round(xs.mean())), int(round(ys.mean())))
    assert not ring[centroid[1], centroid[0]]
    u, v = interior_point(ring)
    assert ring[v, u]
    assert 13 <= np.hypot(v - 30, u - 40) <= 17  # mid-way between the radii: deepest inside the band


def test_interior_point_of_a_rectangle_is_its_centre_and_handles_borders():
    mask = np.zeros((20, 30), bool)
    mask[0:9, 0:21] = True  # touches the image border: the border counts as outside
    u, v = interior_point(mask)
    assert (u, v) == (10, 4)
    single = np.zeros((5, 5), bool)
    single[4, 4] = True
    assert interior_point(single) == (4, 4)
    with pytest.raises(ValueError):
        interior_point(np.zeros((5, 5), bool))


def test_depth_units_and_invalid_values():
    mm = np.array([[0, 1500]], np.uint16)
    np.testing.assert_allclose(depth_in_metres(mm), [[np.nan, 1.5]])
    m = np.array([[np.nan, np.inf, -1.0, 0.0, 2.0]], np.float32)
    np.testing.assert_allclose(depth_in_metres(m), [[np.nan] * 4 + [2.0]])


def test_depth_at_is_a_robust_median_within_the_mask():
    depth = np.full((20, 20), 2000, np.uint16)  # background 2 m
    depth[5:15, 5:15] = 1000  # object at 1 m
    depth[10, 10] = 0  # hole
    depth[9, 9] = 9000  # outlier
    mask = depth != 2000
    assert depth_at(depth, 10, 10, window=5, mask=mask) == pytest.approx(1.0)
    # At the object's edge the window sees background too; the mask keeps it out.
    assert depth_at(depth, 5, 10, window=5, mask=depth < 2000) == pytest.approx(1.0)
    assert depth_at(np.zeros((4, 4), np.uint16), 1, 1) is None
    assert depth_at(np.full((4, 4), 1.25, np.float32), 0, 0, window=3) == pytest.approx(1.25)


def test_backproject_pinhole():
    assert backproject(320, 240, 2.0, K) == pytest.approx((0.0, 0.0, 2.0))
    assert backproject(420, 140, 2.0, K) == pytest.approx((0.4, -0.4, 2.0))


def test_locate_instances_with_and_without_depth():
    mask = np.zeros((480, 640), bool)
    mask[200:281, 380:461] = True
    depth = np.full((480, 640), 1.5, np.float32)
    with_depth = locate_instances([mask], depth, K)[0]
    assert (with_depth.u, with_depth.v) == (420, 240)
    assert with_depth.position == pytest.approx((0.3, 0.0, 1.5))
    assert locate_instances([mask], None, None)[0].position is None
    assert locate_instances([mask], depth, np.zeros(9))[0].position is None  # uncalibrated
    assert locate_instances([mask], np.zeros((480, 640), np.uint16), K)[0].position is None
