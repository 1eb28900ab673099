"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge (numpy and OpenCV only).

Raw images become views of the message's buffer (np.frombuffer with strides from `step`: no copy) when
the layout allows; conversions to RGB copy only when the pixel format differs. Every malformed message
raises ImageConversionError with the reason, before any out-of-bounds access. A compressed image's size is
read from its header (Pillow's lazy open, no pixel decoded) and held to the raw images' limit before
OpenCV decodes it: a 140 kB PNG can declare 12000x12000 pixels.

RGB arrays never have negative strides: the model takes them with torch.from_numpy, which rejects those,
and rclpy's message buffers are writeable, so nothing copies such a view on the way.
"""

from __future__ import annotations

import io
import sys
import warnings
from typing import Any

import cv2
import numpy as np
import PIL.Image
from sensor_msgs.msg import Image

from pmp_ros.language.limits import shorten

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
DEPTH_ENCODINGS = ("16UC1", "32FC1", "mono16")
DEFAULT_MAX_PIXELS = 4096 * 4096
# Compressed formats whose header is read (Pillow's names): those image_transport plugins send and OpenCV
# decodes. Pillow tries no other, so a message never reaches one of its rarer parsers.
COMPRESSED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "PPM")


class ImageConversionError(ValueError):
    """A message that cannot be read as an image; the text says why."""


def image_to_array(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A view of msg.data: [H,W,C] for colour encodings, [H,W] for single-channel ones, in the message's
    dtype and byte order (a big-endian view is still zero-copy; numpy reads it correctly)."""
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {shorten(msg.encoding)} (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f"empty image ({width}x{height})")
    if height * width > max_pixels:
        raise ImageConversionError(f"image too large: {width}x{height} > {max_pixels} pixels")
    pixel_bytes = dtype.itemsize * channels
    if step < width * pixel_bytes:
        raise ImageConversionError(f"step {step} < width {width} x {pixel_bytes} bytes per pixel")
    if step % dtype.itemsize:
        raise ImageConversionError(f"step {step} is not a multiple of the {dtype.itemsize}-byte sample size")
    # The last row needs only its pixels, not its padding.
    needed = (height - 1) * step + width * pixel_bytes
    if len(msg.data) < needed:
        raise ImageConversionError(
            f"truncated data: {len(msg.data)} bytes, {width}x{height} {msg.encoding} with step {step} needs {needed}"
        )
    if msg.is_bigendian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, pixel_bytes, dtype.itemsize) if channels > 1 else (step, pixel_bytes)
    # rclpy stores uint8[] as array.array (a writable buffer): the array is a view of it.
    data = msg.data if isinstance(msg.data, (bytes, bytearray)) else memoryview(msg.data).cast("B")
    return np.ndarray(shape, dtype=dtype, buffer=data, strides=strides)


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """uint8 [H,W,3] RGB for the model, never with negative strides; rgb8 and rgba8 input are returned as
    views, others are converted. mono16 keeps its 8 most significant bits. Depth encodings are not colour
    images."""
    if encoding == "rgb8":
        return array
    if encoding == "bgr8":  # a reversed view (array[..., ::-1]) would have a negative channel stride
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return array[..., :3]
    if encoding == "bgra8":
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if encoding == "mono8":
        return np.repeat(array[..., None], 3, axis=2)
    if encoding == "mono16":
        return np.repeat((array >> 8).astype(np.uint8)[..., None], 3, axis=2)
    raise ImageConversionError(f"encoding {encoding!r} is not a colour image")


def image_to_rgb8(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> uint8 [H,W,3] RGB (a view where possible)."""
    return to_rgb8(image_to_array(msg, max_pixels), msg.encoding)


def compressed_to_rgb8(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (one of COMPRESSED_FORMATS; its `format` field is only reported) -> uint8
    [H,W,3] RGB. The size in the image's header is checked against max_pixels before decoding."""
    if len(msg.data) == 0:
        raise ImageConversionError("empty compressed image")
    data = np.frombuffer(
        msg.data if isinstance(msg.data, (bytes, bytearray)) else memoryview(msg.data).cast("B"), np.uint8
    )
    width, height = compressed_size(data, msg.format)
    if width * height > max_pixels:
        raise ImageConversionError(f"image too large: {width}x{height} > {max_pixels} pixels")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(
            f"cannot decode compressed image (format {shorten(msg.format)}, {data.size} bytes, header {width}x{height})"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compressed_size(data: np.ndarray, format_name: str = "") -> tuple[int, int]:
    """(width, height) from a compressed image's header, without decoding its pixels; ImageConversionError
    when no header can be read. data: uint8 [N]."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about (and past twice its own limit refuses) huge sizes; the caller's limit rules.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data.data), formats=COMPRESSED_FORMATS) as header:
                return header.size
    except PIL.Image.DecompressionBombError as error:  # past twice Pillow's limit: says the pixel count
        raise ImageConversionError(f"image too large: {error}") from None
    except PIL.UnidentifiedImageError:
        reason = f"no {', '.join(COMPRESSED_FORMATS)} header"
    except (OSError, ValueError, SyntaxError) as error:  # a header Pillow recognised but could not read
        reason = shorten(str(error))
    raise ImageConversionError(
        f"cannot decode compressed image (format {shorten(format_name)}, {data.size} bytes): {reason}"
    )


def depth_to_array(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A depth image: uint16 [H,W] millimetres (16UC1, mono16) or float32 [H,W] metres (32FC1), native
    byte order (geometry.depth_in_metres converts)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ImageConversionError(f"depth encoding must be one of {', '.join(DEPTH_ENCODINGS)}, got {msg.encoding!r}")
    array = image_to_array(msg, max_pixels)
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def array_to_image(array: np.ndarray, encoding: str, header: Any = None) -> Image:
    """numpy [H,W(,C)] -> sensor_msgs/Image (copies the pixels into the message, native byte order)."""
    dtype, channels = ENCODINGS[encoding]
    expected = array.shape[:2] + ((channels,) if channels > 1 else ())
    if array.shape != expected or array.dtype != dtype:
        raise ImageConversionError(f"{encoding} needs {dtype} {expected}-shaped data, got {array.dtype} {array.shape}")
    array = np.ascontiguousarray(array)
    msg = Image(
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"),
        step=array.shape[1] * dtype.itemsize * channels,
    )
    if header is not None:
        msg.header = header
    msg.data = array.tobytes()
    return msg


def label_image_to_msg(label_image: np.ndarray, header: Any = None) -> Image:
    """uint16 [H,W] label image -> mono16 Image (pixel value = instance id)."""
    return array_to_image(label_image.astype(np.uint16, copy=False), "mono16", header)
