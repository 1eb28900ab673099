"""Training batches from a COCO-format dataset (this project's export or real data such as COCO).

Images are resized to TrainConfig.coco_image_size (masks with nearest neighbour). Each image's
instruction, standing in for a robot's, names 1..max_targets of the classes present in it, drawn at random
(and, with absent_prob, one absent class); pmp_ros/train/requests.py turns it into prompts and targets.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from pmp_ros.data.coco import CocoDataset
from pmp_ros.model.segmenter import split_synonyms
from pmp_ros.train.requests import training_item, training_request


class CocoBatches:
    def __init__(self, cfg, train_classes: tuple[str, ...], num_queries: int, rank: int, world_size: int):
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.dataset = CocoDataset(cfg.coco_json, cfg.coco_images)
        self.classes = tuple(train_classes) or tuple(sorted(set(self.dataset.categories.values())))
        # A class may list synonyms (FC-CLIP's "cup,cups,water cup"): an annotation's category counts as the
        # class that lists its name.
        self.class_index = {synonym: i for i, name in enumerate(self.classes) for synonym in split_synonyms(name)}
        self.num_queries = num_queries

    def batch(self, step: int) -> tuple[torch.Tensor, list[dict], list[list[str]]]:
        height, width = self.cfg.coco_image_size
        first = (step * self.world_size + self.rank) * self.cfg.batch_size
        images, targets, prompts = [], [], []
        for index in range(first, first + self.cfg.batch_size):
            rng = np.random.default_rng([self.cfg.seed, index])
            rgb, instances = self.dataset[index % len(self.dataset)]
            instances = [(name, mask) for name, mask in instances if name in self.class_index][: self.num_queries]
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
            masks = (
                np.stack(
                    [
                        cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
                        for _, m in instances
                    ]
                ).astype(bool)
                if instances
                else np.zeros((0, height, width), bool)
            )
            labels = [self.class_index[n] for n, _ in instances]
            present = sorted(set(labels))
            count = int(rng.integers(1, min(self.cfg.max_targets, len(present)) + 1)) if present else 0
            named = [int(c) for c in rng.choice(present, size=count, replace=False)] if count else []
            absent = sorted(set(range(len(self.classes))) - set(present))
            if absent and rng.random() < self.cfg.absent_prob:
                named.append(int(rng.choice(absent)))
            request = training_request(
                labels,
                named,
                len(self.classes),
                self.num_queries,
                self.cfg.objective,
                rng,
                self.cfg.vocabulary_request_prob,
                self.cfg.absent_request_prob,
                self.cfg.unprompted_weight,
            )
            image, target = training_item(rgb, masks, labels, request)
            images.append(image)
            targets.append(target)
            # A prompt is the name the image's annotation uses, or for a class not in the image its first
            # synonym, as a user names it ("cup" for "cup,cups,water cup").
            annotated = {label: name for label, (name, _) in zip(labels, instances)}
            prompts.append([annotated.get(c) or split_synonyms(self.classes[c])[0] for c in request.prompt_classes])
        return torch.stack(images), targets, prompts
