"""Object crops with captions from the procedural world, for CLIP pretraining.

Two kinds of window:
- native (zoom 0): a crop_size window at the scene's native scale (no resizing), so that the image tower
  learns features for objects of the size it later sees densely in whole scenes;
- zoomed (zoom > 0): a square window of side max(min_side, zoom x the object's longer box side), resized to
  crop_size by area interpolation (PyTorch's mode="area", as the segmenter's crop classifier resizes its
  windows), so that a small object fills the crop as a large one does. A 12 px star is a few cells of the
  tower's stride-4 stem at native scale; zoomed, its shape survives the stem.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from pmp_ros.data.world import Scene, SceneObject, TabletopWorld

# What a crop is cut for: objects with at least this many visible pixels, at most this share hidden.
MIN_AREA = 30
MAX_OCCLUSION = 0.5


def clearly_visible(scene: Scene, min_area: int = MIN_AREA, max_occlusion: float = MAX_OCCLUSION) -> list[SceneObject]:
    """The objects of the scene that object_crops cuts a crop for, in the scene's order."""
    return [o for o in scene.objects if o.visible_area >= min_area and o.occlusion <= max_occlusion]


def object_crops(
    scene: Scene,
    size: int,
    rng: np.random.Generator,
    min_area: int = MIN_AREA,
    max_occlusion: float = MAX_OCCLUSION,
    jitter: float = 0.25,
    zoom: float = 0.0,
    min_side: int = 16,
) -> list[tuple[np.ndarray, str]]:
    """(uint8 [size,size,3] crop, class name) for each clearly visible object of the scene.

    The window (native, or zoomed with zoom > 0: module docstring) is centred on the object's box centre,
    shifted by up to `jitter` x its side, and padded with edge pixels where it leaves the image.
    """
    windows = []
    for obj in clearly_visible(scene, min_area, max_occlusion):
        x0, y0, x1, y1 = obj.bbox
        side = max(min_side, int(round(zoom * max(x1 - x0, y1 - y0)))) if zoom > 0 else size
        shift = rng.uniform(-jitter, jitter, 2) * side
        left = int(round((x0 + x1) / 2 + shift[0])) - side // 2
        top = int(round((y0 + y1) / 2 + shift[1])) - side // 2
        windows.append((left, top, side, obj.class_name))
    if not windows:
        return []
    pad = max(side for _, _, side, _ in windows) + size
    padded = np.pad(scene.rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    crops = []
    for left, top, side, name in windows:
        window = padded[top + pad : top + pad + side, left + pad : left + pad + side]
        crops.append((_resized(window, size) if side != size else window.copy(), name))
    return crops


def _resized(window: np.ndarray, size: int) -> np.ndarray:
    """uint8 [s,s,3] -> uint8 [size,size,3] by area interpolation (mode="area", as the crop classifier)."""
    x = torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(size, size), mode="area")[0]
    return x.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


class BalancedCropStream:
    """Batches of crops with distinct classes (a contrastive batch must not hold two captions of one class).

    Scenes are rendered from consecutive seeds starting at `first_seed`; crops wait in per-class queues
    until a batch can take them.
    """

    def __init__(
        self,
        world: TabletopWorld,
        first_seed: int,
        crop_size: int,
        seed: int = 0,
        jitter: float = 0.25,
        zoom: float = 0.0,
        min_side: int = 16,
    ):
        self.world = world
        self.jitter = jitter
        self.zoom, self.min_side = zoom, min_side
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
                for crop, name in object_crops(
                    scene, self.crop_size, self.rng, jitter=self.jitter, zoom=self.zoom, min_side=self.min_side
                ):
                    self.queues[name].append(crop)
            ready = [name for name, q in self.queues.items() if q]
            chosen = [ready[i] for i in self.rng.choice(len(ready), batch_size, replace=False)]
            yield np.stack([self.queues[name].popleft() for name in chosen]), chosen
