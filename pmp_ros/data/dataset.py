"""Training/evaluation samples over world seeds.

Seen-only training (seen_only=True): objects of unseen classes stay in the images but are unlabelled (no
mask target, their pixels count as background/"no object"), and instructions name seen classes only. This
is how open-vocabulary segmenters are trained on COCO, where objects outside the 80 classes are background;
evaluation then uses seen_only=False to score unseen classes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pmp_ros.data import splits
from pmp_ros.data import vocabulary as voc
from pmp_ros.data.instructions import Instruction, generate_instructions
from pmp_ros.data.world import Scene, TabletopWorld


@dataclass
class Sample:
    """One scene with its targets. masks bool [N,H,W] with class_names[k] and object_ids[k] (scene ids) per
    labelled instance; instruction_targets: per instruction prompt, indices k of its target masks (empty
    for an absent class)."""

    scene: Scene
    class_names: list[str]
    object_ids: list[int]
    masks: np.ndarray
    instruction: Instruction | None
    instruction_targets: list[list[int]]

    @property
    def rgb(self) -> np.ndarray:
        return self.scene.rgb

    @property
    def depth(self) -> np.ndarray:
        return self.scene.depth


class TabletopDataset:
    """Map-style dataset: dataset[i] renders seeds[i] (deterministic, so workers need no shared state);
    seeds come from pmp_ros.data.splits so that training and evaluation never share a scene.

    instructions: one generated instruction per sample (None when the scene has nothing nameable);
    absent_prob, max_targets, min_area: see generate_instructions.
    """

    def __init__(
        self,
        world: TabletopWorld,
        seeds: Sequence[int] = splits.PMP_TRAIN,
        seen_only: bool = True,
        instructions: bool = True,
        absent_prob: float = 0.0,
        max_targets: int = 3,
        min_area: int = 30,
    ) -> None:
        self.world = world
        self.seeds = seeds
        self.classes = voc.seen_classes() if seen_only else voc.all_classes()
        self.instructions = instructions
        self.absent_prob = absent_prob
        self.max_targets = max_targets
        self.min_area = min_area

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> Sample:
        seed = int(self.seeds[index])
        scene = self.world.render(seed)
        allowed = set(self.classes)
        labelled = [o for o in scene.objects if o.class_name in allowed]
        h, w = scene.instance.shape
        masks = np.zeros((len(labelled), h, w), bool)
        for k, o in enumerate(labelled):
            masks[k] = scene.mask(o.id)
        instruction, targets = None, []
        if self.instructions:
            # A second stream from the seed: instruction choices never change how the scene looks.
            found = generate_instructions(
                scene,
                np.random.default_rng([seed, 1]),
                n=1,
                max_targets=self.max_targets,
                classes=self.classes,
                absent_prob=self.absent_prob,
                min_area=self.min_area,
            )
            if found:
                instruction = found[0]
                index_of = {o.id: k for k, o in enumerate(labelled)}
                targets = [[index_of[i] for i in ids] for ids in instruction.target_ids]
        return Sample(scene, [o.class_name for o in labelled], [o.id for o in labelled], masks, instruction, targets)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))
