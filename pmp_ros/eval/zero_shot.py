"""Zero-shot crop classification of a CLIP model over the full vocabulary, split seen / unseen, and
how often the predicted class has the right colour / the right shape.

    python -m pmp_ros.eval.zero_shot --weights models/pmp-tiny-rn-clip.safetensors --scenes 300
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.crops import object_crops
from pmp_ros.data.world import TabletopWorld


@torch.no_grad()
def evaluate_zero_shot(model, tokenizer, templates: Sequence[str], num_scenes: int, crop_size: int) -> dict:
    """Accuracy of argmax over all classes' template-averaged text embeddings, on crops of CLIP_EVAL scenes."""
    model.eval()
    classes = vocabulary.all_classes()
    text = torch.stack(
        [
            F.normalize(
                F.normalize(model.encode_text(tokenizer([t.format(c) for t in templates])), dim=-1).mean(0), dim=-1
            )
            for c in classes
        ]
    )
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
    colours, shapes = (np.array([vocabulary.split_class(c)[i] for c in classes]) for i in (0, 1))
    return {
        "crops": len(names),
        "accuracy": float(correct.mean()),
        "colour_accuracy": float((colours[predicted] == colours[truth]).mean()),
        "shape_accuracy": float((shapes[predicted] == shapes[truth]).mean()),
        "seen_accuracy": float(correct[~unseen].mean()),
        "unseen_accuracy": float(correct[unseen].mean()),
        "unseen_crops": int(unseen.sum()),
    }


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from pmp_ros.model.clip.registry import create_clip
    from pmp_ros.model.config import DEFAULT_TEMPLATES, ClipConfig

    parser = argparse.ArgumentParser(description="zero-shot crop classification of CLIP weights")
    parser.add_argument("--weights", required=True, help="open_clip weights file")
    parser.add_argument("--model-name", default="pmp-tiny-rn")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--crop-size", type=int, default=64)
    args = parser.parse_args(argv)
    model, tokenizer = create_clip(ClipConfig(model_name=args.model_name, pretrained=args.weights))
    print(json.dumps(evaluate_zero_shot(model, tokenizer, DEFAULT_TEMPLATES, args.scenes, args.crop_size), indent=1))


if __name__ == "__main__":
    main()
