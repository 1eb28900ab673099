import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.coco import (
    CocoDataset,
    counts_to_rle_string,
    export_coco,
    mask_to_rle_string,
    polygons_to_mask,
    read_depth_png,
    read_panoptic_png,
    rle_decode,
    rle_encode,
    rle_string_to_counts,
)
from pmp_ros.data.instructions import generate_instructions
from pmp_ros.data.world import TabletopWorld, WorldConfig

WORLD = TabletopWorld(96, 72, WorldConfig(num_objects=(4, 8)))


@settings(max_examples=80, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 9), st.integers(1, 9))))
def test_rle_round_trip(mask):
    rle = rle_encode(mask)
    assert sum(rle["counts"]) == mask.size and rle["size"] == list(mask.shape)
    np.testing.assert_array_equal(rle_decode(rle), mask)
    compressed = {"size": rle["size"], "counts": counts_to_rle_string(rle["counts"])}
    assert mask_to_rle_string(mask) == compressed
    assert rle_string_to_counts(compressed["counts"], rle["size"]) == rle["counts"]
    np.testing.assert_array_equal(rle_decode(compressed), mask)


def test_rle_is_column_major_starting_with_zeros():
    mask = np.array([[1, 0], [1, 1]], bool)
    assert rle_encode(mask)["counts"] == [0, 2, 1, 1]
    assert rle_encode(~mask)["counts"] == [2, 1, 1]
    # Large deltas use several characters and negative deltas the sign bit.
    counts = [5, 1000, 3, 40, 2, 7]
    assert rle_string_to_counts(counts_to_rle_string(counts), [sum(counts), 1]) == counts


@pytest.mark.parametrize("counts", [[2, 3], [2, 3, 2]])  # short of and past a 2x3 mask
def test_rle_that_does_not_fill_the_mask_is_an_error(counts):
    with pytest.raises(ValueError):
        rle_decode({"size": [2, 3], "counts": counts})
    with pytest.raises(ValueError):
        rle_decode({"size": [2, 3], "counts": counts_to_rle_string(counts)})


def test_polygon_mask():
    m = polygons_to_mask([[0, 0, 4, 0, 4, 3, 0, 3]], 5, 6)  # pixel corners: covers pixels x 0..3, y 0..2
    assert m[:3, :4].all() and m.sum() == 12


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("coco")
    scenes = [WORLD.render(s) for s in range(3)]
    ins = {s.seed: generate_instructions(s, 0, n=2) for s in scenes}
    return scenes, export_coco(scenes, str(out), instructions=ins), out


def test_round_trip(exported):
    scenes, paths, out = exported
    ds = CocoDataset(paths["instances"])
    assert len(ds) == 3
    for scene, (rgb, instances) in zip(scenes, ds):
        np.testing.assert_array_equal(rgb, scene.rgb)
        assert [n for n, _ in instances] == [o.class_name for o in scene.objects]
        for (_, mask), o in zip(instances, scene.objects):
            np.testing.assert_array_equal(mask, scene.instance == o.id)


def test_depth_panoptic_and_metadata(exported):
    scenes, paths, out = exported
    data = json.load(open(paths["instances"]))
    pan = json.load(open(paths["panoptic"]))
    assert len(data["categories"]) == len(voc.all_classes())
    assert {c["name"] for c in data["categories"] if c["unseen"]} == set(voc.unseen_classes())
    for scene, image, p in zip(scenes, data["images"], pan["annotations"]):
        depth = read_depth_png(str(out / image["depth_file"]))
        assert np.abs(depth - scene.depth).max() <= 0.0005 + 1e-6
        ids = read_panoptic_png(str(out / "panoptic" / p["file_name"]))
        np.testing.assert_array_equal(ids, scene.instance)
        assert [s["id"] for s in p["segments_info"]] == [o.id for o in scene.objects]
        anns = {a["id"]: a for a in data["annotations"] if a["image_id"] == image["id"]}
        for ins in image["instructions"]:
            for prompt, targets in zip(ins["prompts"], ins["target_ann_ids"]):
                assert targets and all(
                    data["categories"][anns[t]["category_id"] - 1]["name"] == prompt for t in targets
                )


def test_seen_only_export_and_compressed(tmp_path):
    scenes = [WORLD.render(s) for s in range(4)]
    paths = export_coco(scenes, str(tmp_path), classes=voc.seen_classes(), compressed_rle=True)
    data = json.load(open(paths["instances"]))
    assert all(isinstance(a["segmentation"]["counts"], str) for a in data["annotations"])
    for scene, (_rgb, instances) in zip(scenes, CocoDataset(paths["instances"], str(tmp_path / "images"))):
        seen = [o for o in scene.objects if not voc.is_unseen(o.class_name)]
        assert [n for n, _ in instances] == [o.class_name for o in seen]
        for (_, mask), o in zip(instances, seen):
            np.testing.assert_array_equal(mask, scene.instance == o.id)


def test_reads_foreign_coco_with_polygons_and_crowd(tmp_path):
    import cv2

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.jpg"), np.full((10, 12), 128, np.uint8))  # a grey image
    crowd = rle_encode(np.ones((10, 12), bool))
    data = {
        "images": [{"id": 5, "file_name": "a.jpg", "width": 12, "height": 10}],
        "categories": [{"id": 1, "name": "cup"}, {"id": 3, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]]},
            {"id": 2, "image_id": 5, "category_id": 1, "iscrowd": 1, "segmentation": crowd},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    rgb, instances = CocoDataset(str(tmp_path / "ann.json"), str(tmp_path / "imgs"))[0]
    assert rgb.shape == (10, 12, 3) and rgb.dtype == np.uint8
    assert [n for n, _ in instances] == ["person"] and instances[0][1].sum() == 20
    _, with_crowd = CocoDataset(str(tmp_path / "ann.json"), str(tmp_path / "imgs"), include_crowd=True)[0]
    assert [n for n, _ in with_crowd] == ["person", "cup"]


def test_polygon_parts_are_a_union():
    square = [0, 0, 4, 0, 4, 4, 0, 4]
    m = polygons_to_mask([square, [2, 2, 6, 2, 6, 6, 2, 6]], 8, 8)
    assert m.sum() == 16 + 16 - 4
    triangle = polygons_to_mask([[0, 0, 40, 0, 0, 40]], 50, 50)
    assert abs(int(triangle.sum()) - 800) <= 25
