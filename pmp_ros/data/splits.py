"""Disjoint scene-seed ranges: what each job renders, so evaluation never sees a training scene.

A scene is a pure function of (world config, image size, seed), so a seed range is a dataset.
"""

from __future__ import annotations

CLIP_TRAIN = range(0, 100_000_000)
PMP_TRAIN = range(100_000_000, 200_000_000)
CLIP_EVAL = range(800_000_000, 800_100_000)
VALIDATION = range(850_000_000, 850_100_000)  # for choosing inference settings (never the EVAL set)
EVAL = range(900_000_000, 900_100_000)  # the fixed evaluation set: EVAL[:n] for its first n scenes
TEST = range(950_000_000, 950_100_000)  # scenes used by unit tests and bags


def seeds(split: range, count: int, offset: int = 0) -> range:
    """The first `count` seeds of `split` after `offset`; raises if the split is too small."""
    if offset < 0 or count < 0 or offset + count > len(split):
        raise ValueError(f"{count} seeds from offset {offset} do not fit a split of {len(split)}")
    return split[offset : offset + count]
