import numpy as np
import pytest

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.shapes import outline
from pmp_ros.data.world import FLOOR_Z, TabletopWorld, WorldConfig

WORLD = TabletopWorld()
CLUTTER = TabletopWorld(config=WorldConfig.cluttered())


@pytest.fixture(scope="module")
def scenes():
    return [WORLD.render(s) for s in range(6)] + [CLUTTER.render(s) for s in range(6)]


def _points(scene):
    """Camera-frame points [H,W,3] of the noise-free depth."""
    h, w = scene.depth_gt.shape
    K = scene.K
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    z = scene.depth_gt.astype(np.float64)
    return np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], -1)


def test_deterministic_by_seed():
    a, b, c = WORLD.render(7), WORLD.render(7), WORLD.render(8)
    for field in ("rgb", "depth", "depth_gt", "instance", "semantic"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.objects == b.objects
    assert not np.array_equal(a.rgb, c.rgb)


def test_types_and_shapes(scenes):
    s = scenes[0]
    assert s.rgb.shape == (240, 320, 3) and s.rgb.dtype == np.uint8
    assert s.depth.dtype == s.depth_gt.dtype == np.float32 and s.depth.shape == (240, 320)
    assert s.instance.dtype == np.uint16 and s.semantic.dtype == np.int16
    K = s.K.matrix()
    assert K.shape == (3, 3) and K[0, 0] == s.K.fx and K[1, 2] == s.K.cy and K[2, 2] == 1
    small = TabletopWorld(64, 48).render(0)
    assert small.rgb.shape == (48, 64, 3) and small.K.width == 64


def test_objects_match_maps(scenes):
    for s in scenes:
        ids = [o.id for o in s.objects]
        assert ids == list(range(1, len(ids) + 1))
        assert set(np.unique(s.instance)) <= {0, *ids}
        np.testing.assert_array_equal(s.semantic == -1, s.instance == 0)
        for o in s.objects:
            m = s.instance == o.id
            ys, xs = np.nonzero(m)
            assert o.visible_area == m.sum() > 0
            assert o.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert np.all(s.semantic[m] == voc.class_index(o.class_name))
            assert o.class_name == voc.class_name(o.colour, o.shape)
            assert 0.0 <= o.occlusion <= 1.0 and o.full_area >= o.visible_area


def test_object_counts_and_clutter(scenes):
    counts = [len(s.objects) for s in scenes[6:]]
    assert all(c <= 25 for c in counts) and max(counts) >= 10
    assert all(1 <= len(s.objects) <= 12 for s in scenes[:6])
    assert any(o.occlusion > 0.05 for s in scenes[6:] for o in s.objects)


def test_depth_is_consistent_with_planes(scenes):
    for s in scenes:
        n, d = s.table_plane
        height = _points(s) @ n - d  # height above the table of every pixel's surface point
        bg = height[s.instance == 0]
        on_table, on_floor = np.abs(bg) < 1e-4, np.abs(bg - FLOOR_Z) < 1e-4
        assert np.all(on_table | on_floor) and on_table.any()
        for o in s.objects:
            h = height[s.instance == o.id]
            assert h.min() >= o.base_m - 1e-4 and h.max() <= o.base_m + o.height_m + 1e-4


def test_centres_are_consistent_with_depth_and_K(scenes):
    checked = 0
    for s in scenes:
        K = s.K.matrix()
        pts = _points(s)
        for o in s.objects:
            x, y, z = o.center_cam
            u, v = np.round((K @ (np.array(o.center_cam) / z))[:2]).astype(int)
            top = pts[v, u] @ s.table_plane[0] - s.table_plane[1] if 0 <= v < 240 and 0 <= u < 320 else None
            if top is not None and s.instance[v, u] == o.id and abs(top - o.base_m - o.height_m) < 1e-4:
                assert abs(s.depth_gt[v, u] - z) < 0.006
                checked += 1
            vis = np.array(o.visible_center_cam)
            assert np.linalg.norm(vis - np.array(o.center_cam)) < 2 * o.radius_m + 0.05
    assert checked > 20


def test_noise_and_dropout():
    s = WORLD.render(3)
    valid = s.depth > 0
    assert 0.99 < valid.mean() < 1.0
    err = np.abs(s.depth - s.depth_gt)[valid]
    assert 0 < err.mean() < 0.01
    clean = TabletopWorld(config=WorldConfig(depth_noise=False)).render(3)
    np.testing.assert_array_equal(clean.depth, clean.depth_gt)


def test_class_pool_and_focus():
    pool = ("red star", "blue star", "red ring")
    w = TabletopWorld(config=WorldConfig(classes=pool, distractor_prob=1.0))
    for seed in range(5):
        s = w.render(seed)
        assert {o.class_name for o in s.objects} <= set(pool)
        assert s.focus_class is None or s.focus_class in pool
    with pytest.raises(KeyError):
        TabletopWorld(config=WorldConfig(classes=("teal star",)))


def test_distractors_share_colour_or_shape():
    w = TabletopWorld(config=WorldConfig(distractor_prob=1.0, distractor_share=1.0, num_objects=(8, 8)))
    s = w.render(11)
    fc, fs = voc.split_class(s.focus_class)
    others = [o for o in s.objects if o.class_name != s.focus_class]
    assert others and all(o.colour == fc or o.shape == fs for o in others)


@pytest.mark.parametrize("shape", [s.name for s in voc.SHAPES])
def test_outlines(shape):
    contours = outline(shape)
    assert max(np.linalg.norm(c, axis=1).max() for c in contours) == pytest.approx(1.0)
    area = [0.5 * np.sum(c[:, 0] * np.roll(c[:, 1], -1) - np.roll(c[:, 0], -1) * c[:, 1]) for c in contours]
    assert area[0] > 0 and all(a < 0 for a in area[1:])
