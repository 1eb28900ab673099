"""The overlay picture of one frame's result (numpy and OpenCV only): what the node's overlay topic, the
demo's frames and the live view's overlay channel show.

The camera image stays as it is (no dimming, no blended fills: a blend turns a green object teal); each
instance gets an outline in its own colour, so a small mask stays visible, a box with its label, score and
track id, and a cross-hair on its labelled point. A banner above the image says what was asked and how it
was resolved ("1 of 3 target instance(s), by score", "no red star found"), so a frame where nothing was
found reads differently from a frame never answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

OUTLINE_PX = 2
CROSSHAIR_PX = 9  # arm length of the labelled point's cross-hair
FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_SCALE = 0.4
BANNER_SCALE = 0.42
BANNER_LINE_PX = 17
BANNER_BACKGROUND = (30, 30, 30)
NO_RESULT = "(no result)"


@dataclass(frozen=True)
class Annotation:
    """One instance as the overlay draws it: id (its value in the label image), label, score, track_id (0:
    not tracked), point (u, v) the labelled point, or None."""

    id: int
    label: str
    score: float
    track_id: int = 0
    point: tuple[int, int] | None = None

    @property
    def caption(self) -> str:
        text = f"{self.label} {self.score:.2f}"
        return f"{text} #{self.track_id}" if self.track_id else text

    @property
    def colour(self) -> tuple[int, int, int]:
        """Its track's colour when tracked (stable over frames), else its instance id's."""
        return instance_colour(self.track_id or self.id)


def instance_colour(instance_id: int) -> tuple[int, int, int]:
    """A stable, well-spread RGB colour per id (golden-ratio hue steps)."""
    hue = int((instance_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 200, 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def mask_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """bool [H,W] -> the outer boundary of each connected part, int32 [N,2] (x, y) pixel polygons."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2) for c in contours]


def draw_overlay(
    rgb: np.ndarray,
    label_image: np.ndarray,
    annotations: Sequence[Annotation],
    instruction: str | None = None,
    resolution: str | None = None,
) -> np.ndarray:
    """uint8 [H,W,3] RGB, uint16 [H,W] label image (annotations' ids) -> uint8 RGB picture: the image with
    outlines, caption boxes and cross-hairs, under a two-line banner (instruction, resolution) when either
    is given ([H + 2 * BANNER_LINE_PX + 4, W, 3]), else [H,W,3]."""
    canvas = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    for annotation in annotations:
        contours = mask_outlines(label_image == annotation.id)
        cv2.drawContours(canvas, [c.reshape(-1, 1, 2) for c in contours], -1, annotation.colour, OUTLINE_PX)
    # Captions after every outline, so no outline crosses a caption.
    for annotation in annotations:
        ys, xs = np.nonzero(label_image == annotation.id)
        if len(xs):
            _caption(canvas, annotation.caption, (int(xs.min()), int(ys.min())), annotation.colour)
        if annotation.point is not None:
            _crosshair(canvas, annotation.point, annotation.colour)
    if instruction is None and resolution is None:
        return canvas
    return np.concatenate([banner(canvas.shape[1], instruction or "", resolution or ""), canvas])


def banner(width: int, instruction: str, resolution: str) -> np.ndarray:
    """uint8 [2 * BANNER_LINE_PX + 4, width, 3]: the instruction on the first line, how it was resolved on
    the second (grey: the node's own words)."""
    out = np.full((2 * BANNER_LINE_PX + 4, width, 3), BANNER_BACKGROUND, np.uint8)
    cv2.putText(out, instruction, (4, BANNER_LINE_PX - 4), FONT, BANNER_SCALE, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(out, resolution, (4, 2 * BANNER_LINE_PX - 2), FONT, BANNER_SCALE, (200, 200, 200), 1, cv2.LINE_AA)
    return out


def _caption(canvas: np.ndarray, text: str, corner: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """text in a box filled with colour, just above corner (x, y) (below it at the image's top edge), kept
    inside the image; dark text on light colours, white on dark ones."""
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, LABEL_SCALE, 1)
    box_w, box_h = text_w + 4, text_h + baseline + 4
    height, width = canvas.shape[:2]
    x = min(max(corner[0], 0), max(width - box_w, 0))
    y = corner[1] - box_h if corner[1] >= box_h else min(corner[1], max(height - box_h, 0))
    cv2.rectangle(canvas, (x, y), (x + box_w - 1, y + box_h - 1), colour, -1)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 2, y + 2 + text_h), FONT, LABEL_SCALE, ink, 1, cv2.LINE_AA)


def _crosshair(canvas: np.ndarray, point: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """A cross in the instance's colour over a black one a pixel wider, readable on any background."""
    u, v = int(point[0]), int(point[1])
    cv2.drawMarker(canvas, (u, v), (0, 0, 0), cv2.MARKER_CROSS, 2 * CROSSHAIR_PX + 1, 3)
    cv2.drawMarker(canvas, (u, v), colour, cv2.MARKER_CROSS, 2 * CROSSHAIR_PX + 1, 1)


def write_gif(path: Path, pictures: Sequence[np.ndarray], fps: float) -> None:
    """An animated GIF looping forever, fps pictures per second (uint8 [H,W,3] RGB, one size).

    imageio's pillow plugin (imageio >= 2.28, v2 and v3 API) takes `duration` in milliseconds per frame;
    the GIF format stores hundredths of a second, so the rate is exact for fps dividing 100.
    """
    import imageio.v3 as iio

    iio.imwrite(path, np.stack(pictures), extension=".gif", duration=1000.0 / fps, loop=0)
