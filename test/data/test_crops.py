"""Object crops for CLIP pretraining (pmp_ros/data/crops.py): native windows keep the scene's scale, zoomed
windows make every object, small ones included, fill its crop alike."""

import dataclasses

import numpy as np

from pmp_ros.data import splits
from pmp_ros.data.crops import BalancedCropStream, clearly_visible, object_crops
from pmp_ros.data.world import TabletopWorld

SIZE = 64


def _object_share_of_crops(scene, **window) -> list[float]:
    """Per clearly visible object, the share of its crop that is the object: the crops are cut from an image
    whose pixels are the instance ids (the same windows, since the draws do not depend on the pixels)."""
    ids = np.repeat(scene.instance.astype(np.uint8)[..., None], 3, axis=2)
    crops = object_crops(dataclasses.replace(scene, rgb=ids), SIZE, np.random.default_rng(0), jitter=0.0, **window)
    return [float((crop[..., 0] == obj.id).mean()) for (crop, _), obj in zip(crops, clearly_visible(scene))]


def test_zoomed_windows_make_small_objects_fill_their_crops():
    world = TabletopWorld()
    native, zoomed, areas = [], [], []
    for seed in splits.seeds(splits.CLIP_EVAL, 6):
        scene = world.render(seed)
        native += _object_share_of_crops(scene)
        zoomed += _object_share_of_crops(scene, zoom=1.5, min_side=16)
        areas += [o.visible_area for o in clearly_visible(scene)]
    native, zoomed, small = np.array(native), np.array(zoomed), np.array(areas) < 200
    assert small.sum() >= 3 and (~small).sum() >= 3
    # At native scale a small object is a speck in its 64 px crop; zoomed, it fills it as a large one does.
    # (Shares only: an object at the image's edge is stretched by the edge padding.)
    assert np.median(native[small]) < 0.05
    assert np.median(zoomed[small]) > 0.2 and np.median(zoomed[~small]) > 0.2
    assert np.median(zoomed[small] / native[small]) > 5


def test_native_crops_are_the_scene_at_its_own_scale():
    scene = TabletopWorld().render(splits.CLIP_EVAL.start)
    for (crop, name), obj in zip(
        object_crops(scene, SIZE, np.random.default_rng(0), jitter=0.0), clearly_visible(scene)
    ):
        assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8 and name == obj.class_name
        x0, y0, x1, y1 = obj.bbox
        left, top = int(round((x0 + x1) / 2)) - SIZE // 2, int(round((y0 + y1) / 2)) - SIZE // 2
        if left >= 0 and top >= 0 and left + SIZE <= scene.rgb.shape[1] and top + SIZE <= scene.rgb.shape[0]:
            assert np.array_equal(crop, scene.rgb[top : top + SIZE, left : left + SIZE])


def test_a_zoomed_stream_resumes_where_it_stopped():
    def stream():
        return BalancedCropStream(TabletopWorld(), splits.CLIP_TRAIN.start, SIZE, seed=3, zoom=1.5, min_side=16)

    first = stream()
    batches = first.batches(8)
    next(batches)
    state = first.state()
    expected = next(batches)
    second = stream()
    second.restore(state)
    crops, names = next(second.batches(8))
    assert names == expected[1] and np.array_equal(crops, expected[0])
