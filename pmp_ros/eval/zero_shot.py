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
from pmp_ros.data.crops import clearly_visible, object_crops
from pmp_ros.data.world import TabletopWorld
from pmp_ros.eval.evaluate import SMALL_AREA


@torch.no_grad()
def evaluate_zero_shot(
    model, tokenizer, templates: Sequence[str], num_scenes: int, crop_size: int, zoom: float = 0.0, min_side: int = 16
) -> dict:
    """Accuracy of argmax over all classes' template-averaged text embeddings, on crops of CLIP_EVAL scenes
    (native-scale windows, or zoomed ones with zoom > 0: pmp_ros/data/crops.py), overall, by attribute,
    seen / unseen, and by the object's visible area (small: < 200 px, as the segmenter's small targets)."""
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
    crops, names, small = [], [], []
    for seed in splits.seeds(splits.CLIP_EVAL, num_scenes):
        scene = world.render(seed)
        for crop, name in object_crops(scene, crop_size, rng, jitter=0.0, zoom=zoom, min_side=min_side):
            crops.append(crop)
            names.append(name)
        small += [o.visible_area < SMALL_AREA for o in clearly_visible(scene)]
    mean, std = model.visual.image_mean, model.visual.image_std
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    image = torch.cat([F.normalize(model.encode_image(chunk), dim=-1) for chunk in x.split(256)])
    predicted = (image @ text.T).argmax(1).numpy()
    truth = np.array([vocabulary.class_index(n) for n in names])
    unseen = np.array([vocabulary.is_unseen(n) for n in names])
    correct = predicted == truth
    colours, shapes = (np.array([vocabulary.split_class(c)[i] for c in classes]) for i in (0, 1))
    right_shape = shapes[predicted] == shapes[truth]
    small = np.array(small)
    return {
        "crops": len(names),
        "accuracy": float(correct.mean()),
        "colour_accuracy": float((colours[predicted] == colours[truth]).mean()),
        "shape_accuracy": float(right_shape.mean()),
        "seen_accuracy": float(correct[~unseen].mean()),
        "unseen_accuracy": float(correct[unseen].mean()),
        "unseen_crops": int(unseen.sum()),
        "small_crops": int(small.sum()),
        "small_accuracy": float(correct[small].mean()),
        "small_shape_accuracy": float(right_shape[small].mean()),
        "large_accuracy": float(correct[~small].mean()),
        "large_shape_accuracy": float(right_shape[~small].mean()),
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
    parser.add_argument("--zoom", type=float, default=0.0, help="zoomed windows (pmp_ros/data/crops.py); 0: native")
    parser.add_argument("--min-side", type=int, default=16, help="smallest zoomed window, px")
    args = parser.parse_args(argv)
    model, tokenizer = create_clip(ClipConfig(model_name=args.model_name, pretrained=args.weights))
    print(
        json.dumps(
            evaluate_zero_shot(
                model, tokenizer, DEFAULT_TEMPLATES, args.scenes, args.crop_size, zoom=args.zoom, min_side=args.min_side
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
