"""sensor_msgs/Image <-> numpy for every supported encoding, padded rows, byte order, and malformed input."""

import array

import cv2
import numpy as np
import pytest
import torch
from sensor_msgs.msg import CompressedImage

from pmp_ros.ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    array_to_image,
    compressed_to_rgb8,
    depth_to_array,
    image_to_array,
    image_to_rgb8,
    label_image_to_msg,
)

from message_samples import padded_image_message

H, W = 5, 7


def _pixels(encoding):
    dtype, channels = ENCODINGS[encoding]
    shape = (H, W, channels) if channels > 1 else (H, W)
    return (np.arange(np.prod(shape)) * 37 % 251).astype(dtype).reshape(shape)


def _buffer(msg):
    return np.frombuffer(memoryview(msg.data).cast("B"), np.uint8)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_is_exact_and_zero_copy(encoding):
    pixels = _pixels(encoding)
    msg = array_to_image(pixels, encoding)
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, pixels)
    assert np.shares_memory(view, _buffer(msg))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("bigendian", [False, True])
def test_padded_step_and_byte_order(encoding, bigendian):
    pixels = _pixels(encoding)
    msg = padded_image_message(pixels, encoding, pad_bytes=4 * ENCODINGS[encoding][0].itemsize, bigendian=bigendian)
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, pixels)
    assert np.shares_memory(view, _buffer(msg))


def test_colour_encodings_to_rgb():
    rgb = _pixels("rgb8")
    assert np.shares_memory(image_to_rgb8(msg := array_to_image(rgb, "rgb8")), _buffer(msg))
    np.testing.assert_array_equal(image_to_rgb8(array_to_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8")), rgb)
    alpha = np.full((H, W, 1), 9, np.uint8)
    np.testing.assert_array_equal(image_to_rgb8(array_to_image(np.concatenate([rgb, alpha], 2), "rgba8")), rgb)
    bgra = np.concatenate([rgb[..., ::-1], alpha], 2)
    np.testing.assert_array_equal(image_to_rgb8(array_to_image(np.ascontiguousarray(bgra), "bgra8")), rgb)
    mono = _pixels("mono8")
    np.testing.assert_array_equal(image_to_rgb8(array_to_image(mono, "mono8")), np.repeat(mono[..., None], 3, 2))
    mono16 = _pixels("mono16") * 256
    out = image_to_rgb8(array_to_image(mono16, "mono16"))
    assert out.dtype == np.uint8 and (out[..., 0] == mono16 >> 8).all()


COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")


@pytest.mark.parametrize("encoding", COLOUR_ENCODINGS)
@pytest.mark.parametrize("pad_bytes", [0, 6])
def test_rgb_output_goes_into_torch_from_a_writeable_buffer(encoding, pad_bytes):
    # rclpy hands the node writeable buffers (array.array), which the model passes to torch.from_numpy
    # without copying; torch rejects negative strides, as a reversed view of bgr8 has.
    msg = padded_image_message(_pixels(encoding), encoding, pad_bytes)
    msg.data = array.array("B", bytes(msg.data))
    rgb = image_to_rgb8(msg)
    assert rgb.flags.writeable and min(rgb.strides) > 0
    np.testing.assert_array_equal(torch.from_numpy(rgb).numpy(), rgb)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_is_not_a_colour_image(encoding):
    with pytest.raises(ImageConversionError, match="not a colour image"):
        image_to_rgb8(array_to_image(_pixels(encoding), encoding))


def test_big_endian_depth_becomes_native():
    depth = _pixels("16UC1") * 100
    out = depth_to_array(padded_image_message(depth, "16UC1", 0, bigendian=True))
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, depth)
    with pytest.raises(ImageConversionError, match="depth encoding"):
        depth_to_array(array_to_image(_pixels("rgb8"), "rgb8"))


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(encoding="yuv422"), "unsupported encoding"),
        (dict(encoding=""), "unsupported encoding"),
        (dict(step=3 * W - 1), "step"),
        (dict(data=bytes(3 * W * H - 1)), "truncated"),
        (dict(height=0), "empty"),
        (dict(width=0), "empty"),
        (dict(height=100_000, width=100_000), "too large"),
    ],
)
def test_malformed_images_are_rejected_with_a_reason(change, reason):
    msg = array_to_image(_pixels("rgb8"), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=reason):
        image_to_rgb8(msg)


def test_max_pixels_is_configurable():
    msg = array_to_image(_pixels("rgb8"), "rgb8")
    with pytest.raises(ImageConversionError, match="too large"):
        image_to_array(msg, max_pixels=H * W - 1)
    assert image_to_array(msg, max_pixels=H * W).shape == (H, W, 3)


def test_odd_step_for_16_bit_is_rejected():
    msg = array_to_image(_pixels("mono16"), "mono16")
    msg.step = 2 * W + 1
    msg.data = bytes(msg.step * H)
    with pytest.raises(ImageConversionError, match="multiple"):
        image_to_array(msg)


def test_compressed_png_and_garbage():
    rgb = _pixels("rgb8")
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(compressed_to_rgb8(CompressedImage(format="png", data=png.tobytes())), rgb)
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb8(CompressedImage(format="jpeg", data=b"not an image"))
    with pytest.raises(ImageConversionError, match="empty"):
        compressed_to_rgb8(CompressedImage(format="jpeg"))


def test_label_image_message():
    label = np.zeros((H, W), np.uint16)
    label[1:3, 2:4] = 300
    msg = label_image_to_msg(label)
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("mono16", 2 * W, H, W)
    np.testing.assert_array_equal(image_to_array(msg), label)
