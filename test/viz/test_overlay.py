"""The overlay picture: outlines in the instance's colour over the undimmed image (also for a small,
150-pixel object), captions, cross-hairs, the banner's resolution text; the node's overlay and label-image
messages; the demo's GIF at its intended rate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from PIL import Image as PILImage
from std_msgs.msg import Header

from pmp_ros.geometry import PointEstimate
from pmp_ros.model.inference import Instance, Prediction
from pmp_ros.ros import messages
from pmp_ros.ros.image_conversion import image_to_array
from pmp_ros.viz.overlay import (
    BANNER_LINE_PX,
    BANNER_SCALE,
    FONT,
    OUTLINE_PX,
    Annotation,
    banner,
    draw_overlay,
    instance_colour,
    write_gif,
)

HEADER = Header(stamp=Time(sec=3, nanosec=7), frame_id="camera_optical")
GREY = 120


def _scene(height=120, width=160):
    """A grey image with one 10x15 = 150-pixel object (id 1) far from the image's edges."""
    rgb = np.full((height, width, 3), GREY, np.uint8)
    label = np.zeros((height, width), np.uint16)
    label[60:70, 70:85] = 1
    return rgb, label


def test_small_object_gets_an_outline_in_its_colour_over_an_undimmed_image():
    rgb, label = _scene()
    assert (label == 1).sum() == 150
    picture = draw_overlay(rgb, label, [Annotation(1, "red star", 0.8)])
    colour = np.array(instance_colour(1))
    boundary = (label == 1) & ~cv2.erode((label == 1).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    on_outline = (picture[boundary] == colour).all(axis=1)
    assert on_outline.mean() > 0.9, "the mask's boundary is drawn in the instance's colour"
    interior = np.zeros_like(boundary)
    interior[60 + OUTLINE_PX : 70 - OUTLINE_PX, 70 + OUTLINE_PX : 85 - OUTLINE_PX] = True
    assert (picture[interior] == GREY).all(), "inside the outline the image is not blended or dimmed"
    assert (picture[100:, :] == GREY).all() and (picture[:, :40] == GREY).all(), "away from it, untouched"


def test_caption_box_and_crosshair():
    rgb, label = _scene()
    plain = draw_overlay(rgb, label, [Annotation(1, "red star", 0.8)])
    tracked = draw_overlay(rgb, label, [Annotation(1, "red star", 0.8, track_id=4, point=(77, 65))])
    caption_rows = slice(40, 60)  # the caption box sits just above the mask's top edge (row 60)
    assert ((plain[caption_rows, 70:110] == instance_colour(1)).all(axis=2)).sum() > 50
    assert ((tracked[caption_rows, 70:120] == instance_colour(4)).all(axis=2)).sum() > 50  # the track's colour
    assert (tracked[caption_rows] != plain[caption_rows]).any()  # "#4" added
    # the cross-hair: the instance's colour along both arms through the point, black beside them
    assert (tracked[65, 70:85] == instance_colour(4)).all(axis=1).sum() >= 12
    assert (tracked[58:73, 77] == instance_colour(4)).all(axis=1).sum() >= 12
    assert (tracked[64, 80] == 0).all()


def test_banner_shows_the_resolution_text():
    rgb, label = _scene()
    height, width = rgb.shape[:2]
    with_text = draw_overlay(rgb, label, [], "pick up the red star", "no red star found")
    assert with_text.shape == (height + 2 * BANNER_LINE_PX + 4, width, 3)
    np.testing.assert_array_equal(with_text[2 * BANNER_LINE_PX + 4 :], rgb)  # the image below, unchanged
    second_line = with_text[BANNER_LINE_PX : 2 * BANNER_LINE_PX + 4]
    ink = np.nonzero((second_line != second_line[0, -1]).any(axis=(0, 2)))[0]
    (text_w, _), _ = cv2.getTextSize("no red star found", FONT, BANNER_SCALE, 1)
    assert abs((ink.max() - ink.min() + 1) - text_w) <= 3, "the second line's ink spans the resolution text"
    other = banner(width, "pick up the red star", "instruction not understood")
    assert (other[:BANNER_LINE_PX] == with_text[:BANNER_LINE_PX]).all()  # same first line
    assert (other[BANNER_LINE_PX:] != second_line).any()  # another resolution, another second line
    assert draw_overlay(rgb, label, []).shape == rgb.shape  # no banner asked for


def _prediction(label):
    mask = label == 1
    instance = Instance(1, "red star", 0, 0.9, (70, 60, 84, 69), int(mask.sum()), mask)
    return Prediction(label, [instance], np.full(label.shape, -1, np.int32))


def test_node_overlay_message_has_the_banner_and_the_outline():
    rgb, label = _scene()
    prediction = _prediction(label)
    points = [PointEstimate(77, 65, None)]
    msg = messages.overlay_image(
        rgb, prediction, points, HEADER, {1: 3}, "pick up the red star", "1 of 1 target instance(s), by score"
    )
    picture = image_to_array(msg)
    assert msg.encoding == "rgb8" and msg.header == HEADER
    assert picture.shape == (120 + 2 * BANNER_LINE_PX + 4, 160, 3)
    below = picture[2 * BANNER_LINE_PX + 4 :]
    assert (below[60, 70:85] == instance_colour(3)).all(axis=1).sum() >= 10  # outline in the track's colour
    without_banner = image_to_array(messages.overlay_image(rgb, prediction, points, HEADER))
    assert without_banner.shape == rgb.shape


def test_label_image_message_round_trips():
    _, label = _scene()
    label[5:9, 5:9] = 2
    msg = messages.label_image(HEADER, _prediction(label))
    assert msg.encoding == "mono16" and msg.header == HEADER
    np.testing.assert_array_equal(image_to_array(msg), label)


def test_gif_plays_at_its_intended_rate(tmp_path):
    pictures = [np.full((16, 24, 3), 40 * i, np.uint8) for i in range(5)]
    path = tmp_path / "demo.gif"
    write_gif(path, pictures, fps=10)
    with PILImage.open(path) as gif:
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
        assert gif.n_frames == 5 and gif.info.get("loop") == 0
    assert durations == [100] * 5  # milliseconds: 10 frames per second


def test_rviz_config_shows_the_node_topics():
    import yaml

    from pmp_ros.ros import interface

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "pmp.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    node_topics = (
        interface.OVERLAY_TOPIC,
        interface.IMAGE_TOPIC,
        interface.MARKERS_TOPIC,
        interface.OBJECT_POINTS_TOPIC,
        interface.LABEL_IMAGE_TOPIC,
    )
    assert {"/" + t for t in node_topics} <= topics
