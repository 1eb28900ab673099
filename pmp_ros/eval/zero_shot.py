"""Zero-shot crop classification of a CLIP model over the full vocabulary, split seen / unseen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.world import TabletopWorld
from pmp_ros.train.crops import object_crops


@torch.no_grad()
def evaluate_zero_shot(model, tokenizer, templates: Sequence[str], num_scenes: int, crop_size: int) -> dict:
    """Accuracy of argmax over all classes' template-averaged text embeddings, on crops of CLIP_EVAL scenes."""
    model.eval()
    classes = vocabulary.all_classes()
    text = torch.stack([
        F.normalize(F.normalize(model.encode_text(tokenizer([t.format(c) for t in templates])), dim=-1).mean(0),
                    dim=-1)
        for c in classes])
    world, rng = TabletopWorld(), np.random.default_rng(0)
    crops, names = [], []
    for seed in splits.seeds(splits.CLIP_EVAL, num_scenes):
        for crop, name in object_crops(world.render(seed), crop_size, rng, jitter=0.0):
            crops.append(crop)
            names.append(name)
    mean, std = model.visual.image_mean, model.visual.image_std
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    image = torch.cat([F.normalize(model.encode_image(chunk), dim=-1) for chunk in x.split(256)])
    predicted = (image @ text.T).argmax(1).numpy()
    truth = np.array([vocabulary.class_index(n) for n in names])
    unseen = np.array([vocabulary.is_unseen(n) for n in names])
    correct = predicted == truth
    return {"crops": len(names), "accuracy": float(correct.mean()),
            "seen_accuracy": float(correct[~unseen].mean()), "unseen_accuracy": float(correct[unseen].mean()),
            "unseen_crops": int(unseen.sum())}
