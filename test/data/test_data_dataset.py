import numpy as np

from pmp_ros.data import splits
from pmp_ros.data import vocabulary as voc
from pmp_ros.data.dataset import TabletopDataset
from pmp_ros.data.world import TabletopWorld, WorldConfig

WORLD = TabletopWorld(96, 72, WorldConfig.cluttered())


def test_defaults_to_the_pmp_training_seeds():
    assert TabletopDataset(WORLD).seeds == splits.PMP_TRAIN


def test_seen_only_training_samples():
    ds = TabletopDataset(WORLD, seeds=range(10), seen_only=True)
    assert len(ds) == 10
    hidden_unseen = 0
    for sample in ds:
        scene = sample.scene
        assert sample.rgb is scene.rgb and sample.depth is scene.depth
        assert not any(voc.is_unseen(n) for n in sample.class_names)
        assert sample.masks.shape == (len(sample.class_names), 72, 96) and sample.masks.dtype == bool
        for name, oid, mask in zip(sample.class_names, sample.object_ids, sample.masks):
            np.testing.assert_array_equal(mask, scene.instance == oid)
            assert scene.objects[oid - 1].class_name == name
        hidden_unseen += sum(voc.is_unseen(o.class_name) for o in scene.objects)
        if sample.instruction is not None:
            assert not any(voc.is_unseen(p) for p in sample.instruction.prompts)
            for prompt, targets in zip(sample.instruction.prompts, sample.instruction_targets):
                assert targets and all(sample.class_names[k] == prompt for k in targets)
    assert hidden_unseen > 0  # unseen objects are in the images, unlabelled


def test_evaluation_samples_label_everything_and_are_deterministic():
    ds = TabletopDataset(WORLD, seeds=[3, 4], seen_only=False, absent_prob=1.0)
    a, b = ds[0], ds[0]
    assert a.class_names == [o.class_name for o in a.scene.objects]
    assert a.instruction == b.instruction and np.array_equal(a.masks, b.masks)
    assert a.instruction.absent and [] in a.instruction_targets
    assert TabletopDataset(WORLD, seeds=[3], instructions=False)[0].instruction is None
