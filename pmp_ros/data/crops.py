"""Object crops with captions from the procedural world, for CLIP pretraining.

Crops are cut at the scene's native scale (no resizing), so the image tower learns features for objects
of the size it later sees densely in whole scenes.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator

import numpy as np

from pmp_ros.data.world import Scene, TabletopWorld


def object_crops(
    scene: Scene,
    size: int,
    rng: np.random.Generator,
    min_area: int = 30,
    max_occlusion: float = 0.5,
    jitter: float = 0.25,
) -> list[tuple[np.ndarray, str]]:
    """(uint8 [size,size,3] crop, class name) for each clearly visible object of the scene.

    The crop window is centred on the object's box centre, shifted by up to `jitter` * size, and padded
    with edge pixels where it leaves the image.
    """
    pad = size
    padded = np.pad(scene.rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    crops = []
    for obj in scene.objects:
        if obj.visible_area < min_area or obj.occlusion > max_occlusion:
            continue
        x0, y0, x1, y1 = obj.bbox
        shift = rng.uniform(-jitter, jitter, 2) * size
        cx = int(round((x0 + x1) / 2 + shift[0])) + pad
        cy = int(round((y0 + y1) / 2 + shift[1])) + pad
        top, left = cy - size // 2, cx - size // 2
        crops.append((padded[top : top + size, left : left + size].copy(), obj.class_name))
    return crops


class BalancedCropStream:
    """Batches of crops with distinct classes (a contrastive batch must not hold two captions of one class).

    Scenes are rendered from consecutive seeds starting at `first_seed`; crops wait in per-class queues
    until a batch can take them.
    """

    def __init__(self, world: TabletopWorld, first_seed: int, crop_size: int, seed: int = 0, jitter: float = 0.25):
        self.world = world
        self.jitter = jitter
        self.next_seed = first_seed
        self.crop_size = crop_size
        self.rng = np.random.default_rng(seed)
        self.queues: dict[str, deque] = defaultdict(deque)

    def state(self) -> dict:
        """Position of the stream (next scene seed, queued crops, random state), for resuming training."""
        return {
            "next_seed": self.next_seed,
            "rng": self.rng.bit_generator.state,
            "queues": {name: list(q) for name, q in self.queues.items()},
        }

    def restore(self, state: dict) -> None:
        """Continues exactly where `state()` was taken."""
        self.next_seed = state["next_seed"]
        self.rng.bit_generator.state = state["rng"]
        self.queues = defaultdict(deque, {name: deque(q) for name, q in state["queues"].items()})

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, list[str]]]:
        """Yields (uint8 [B,S,S,3], B distinct class names) forever."""
        while True:
            while sum(1 for q in self.queues.values() if q) < batch_size:
                scene = self.world.render(self.next_seed)
                self.next_seed += 1
                for crop, name in object_crops(scene, self.crop_size, self.rng, jitter=self.jitter):
                    self.queues[name].append(crop)
            ready = [name for name, q in self.queues.items() if q]
            chosen = [ready[i] for i in self.rng.choice(len(ready), batch_size, replace=False)]
            yield np.stack([self.queues[name].popleft() for name in chosen]), chosen
