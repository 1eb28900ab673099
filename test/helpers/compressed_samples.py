"""Compressed images whose header declares more pixels than they are worth decoding (issue #26), built
without ever holding the pixels."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def uniform_png(width: int, height: int) -> bytes:
    """A valid 8-bit greyscale PNG of zeros, compressed block of rows by block of rows (a 12000x12000 one is
    140 kB)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(width)  # filter type 0, then the row's pixels
    block_rows = 500
    parts = [compressor.compress(row * block_rows) for _ in range(height // block_rows)]
    parts.append(compressor.compress(row * (height % block_rows)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # depth 8, greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose start-of-frame header is rewritten to declare width x height."""
    _, encoded = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")  # baseline start of frame: marker, length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)
