"""COCO-format training batches: annotations map to the training classes, synonyms included."""

from pmp_ros.data.coco import export_coco
from pmp_ros.data.world import TabletopWorld
from pmp_ros.train.coco_batches import CocoBatches
from pmp_ros.train.train_pmp import TrainConfig


def test_an_annotation_counts_as_the_class_listing_its_name_as_a_synonym(tmp_path):
    # A checkpoint converted from FC-CLIP trains on its class names, which list synonyms ("cup,cups").
    scene = TabletopWorld(128, 96).render(0)
    paths = export_coco([scene], str(tmp_path / "coco"))
    present = sorted({obj.class_name for obj in scene.objects if obj.visible_area > 0})
    classes = (f"{present[0]}, first synonym", f"another name,{present[1]}")
    cfg = TrainConfig(
        coco_json=paths["instances"],
        coco_images=str(tmp_path / "coco" / "images"),
        coco_image_size=(96, 128),
        batch_size=1,
        seed=0,
        max_targets=2,
    )
    _, targets, prompts = CocoBatches(cfg, classes, num_queries=20, rank=0, world_size=1).batch(0)
    assert sorted(set(targets[0]["labels"].tolist())) == [0, 1]  # only these two of the scene's classes
    assert set(prompts[0]) <= set(present[:2]) and prompts[0]  # prompts are the annotations' own names
