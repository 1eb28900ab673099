"""Depth outside the valid range (default geometry.DEPTH_RANGE_M, 0.05-20 m) is no reading (issue #26: a depth
of 1e30 m gave position_valid true and z = 1e30). The range is an argument with that default everywhere."""

from types import SimpleNamespace

import numpy as np
import pytest

from pmp_ros.geometry import DEPTH_RANGE_M, depth_at, depth_in_metres, locate_instances
from pmp_ros.language.resolve import _places
from pmp_ros.objects3d import Objects3DParams, measure_objects, object_centroids

K = np.array([500.0, 0, 32, 0, 500.0, 24, 0, 0, 1])
HEIGHT, WIDTH = 48, 64


def _square():
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[14:34, 22:42] = True
    return mask


@pytest.mark.parametrize("far", [1e30, 3.4e38, 20.5, 1e6])
def test_a_far_float_depth_gives_no_position(far):
    depth = np.full((HEIGHT, WIDTH), far, np.float32)
    (point,) = locate_instances([_square()], depth, K)
    assert point.position is None  # the node publishes position_valid false for it
    (measured,) = measure_objects([_square()], depth, K)
    assert measured.centroid is None and measured.num_points == 0 and measured.box is None
    assert object_centroids([_square()], depth, K) == [None]


def test_too_near_and_too_far_values_are_invalid_in_both_units():
    assert DEPTH_RANGE_M == (0.05, 20.0)
    metres = np.array([[0.01, 0.05, 1.0, 20.0, 25.0, 1e30]], np.float32)
    np.testing.assert_allclose(depth_in_metres(metres), [[np.nan, 0.05, 1.0, 20.0, np.nan, np.nan]])
    millimetres = np.array([[30, 50, 1000, 20000, 65535]], np.uint16)  # 65535: a sensor's "no reading"
    np.testing.assert_allclose(depth_in_metres(millimetres), [[np.nan, 0.05, 1.0, 20.0, np.nan]])


def test_a_far_reading_beside_good_ones_is_left_out_of_the_median_and_the_centroid():
    depth = np.full((HEIGHT, WIDTH), 1.0, np.float32)
    depth[20:28, 28:36] = 1e30  # a patch of corrupt readings at the mask's centre
    assert depth_at(depth, 31, 23, window=15, mask=_square()) == pytest.approx(1.0)
    (measured,) = measure_objects([_square()], depth, K)
    assert measured.centroid is not None and measured.centroid[2] == pytest.approx(1.0)
    assert measured.num_points == 18 * 18 - 64  # the core (the mask eroded by a pixel) less the far patch


def test_the_range_is_an_argument():
    depth = np.full((HEIGHT, WIDTH), 30.0, np.float32)  # a long-range sensor's 30 m
    assert locate_instances([_square()], depth, K)[0].position is None
    (point,) = locate_instances([_square()], depth, K, valid_range=(0.05, 50.0))
    assert point.position is not None and point.position[2] == pytest.approx(30.0)
    params = Objects3DParams(depth_range=(0.05, 50.0))
    assert measure_objects([_square()], depth, K, params=params)[0].centroid[2] == pytest.approx(30.0)
    assert object_centroids([_square()], depth, K, params=params)[0][2] == pytest.approx(30.0)
    assert depth_at(depth, 31, 23, mask=_square(), valid_range=(0.05, 50.0)) == pytest.approx(30.0)


def test_instruction_resolution_ignores_far_readings_too():
    depth = np.full((HEIGHT, WIDTH), 1e30, np.float32)
    depth[14:20, 22:42] = 1.5  # a few good readings on the object
    (place,) = _places([SimpleNamespace(mask=_square())], depth, K)
    assert place.z == pytest.approx(1.5)
