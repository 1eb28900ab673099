"""Compressed images are held to the raw images' size limit by their header, before any pixel is decoded.

A PNG of a uniform 12000x12000 image compresses to 140 kB; decoding it first would allocate 432 MB of
pixels (issue #26). The memory check runs in a fresh interpreter and reads its peak resident size (VmHWM;
getrusage's ru_maxrss would carry over this process's peak through fork and exec).
"""

import json
import subprocess
import sys

import pytest
from sensor_msgs.msg import CompressedImage

from pmp_ros.ros.image_conversion import DEFAULT_MAX_PIXELS, ImageConversionError, compressed_to_rgb8

from compressed_samples import jpeg_declaring, uniform_png

HUGE = 12000  # 144 M pixels, past DEFAULT_MAX_PIXELS (16.8 M)


def test_a_small_png_declaring_a_huge_image_is_rejected_without_decoding_it():
    data = uniform_png(HUGE, HUGE)
    assert len(data) < 200_000
    with pytest.raises(ImageConversionError, match=f"too large: {HUGE}x{HUGE}"):
        compressed_to_rgb8(CompressedImage(format="png", data=data))


def test_a_jpeg_declaring_a_huge_image_is_rejected_by_its_header():
    with pytest.raises(ImageConversionError, match=f"too large: {HUGE}x{HUGE}"):
        compressed_to_rgb8(CompressedImage(format="jpeg", data=jpeg_declaring(HUGE, HUGE)))


def test_the_limit_is_the_raw_images_and_a_given_one_is_kept():
    data = uniform_png(64, 32)
    assert compressed_to_rgb8(CompressedImage(format="png", data=data)).shape == (32, 64, 3)
    with pytest.raises(ImageConversionError, match="too large: 64x32 > 2047 pixels"):
        compressed_to_rgb8(CompressedImage(format="png", data=data), max_pixels=64 * 32 - 1)
    assert DEFAULT_MAX_PIXELS < HUGE * HUGE


def test_rejecting_the_huge_png_does_not_grow_memory(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(uniform_png(HUGE, HUGE))
    script = f"""
import json
from pathlib import Path
from sensor_msgs.msg import CompressedImage
from pmp_ros.ros.image_conversion import ImageConversionError, compressed_to_rgb8
msg = CompressedImage(format="png", data=Path({str(path)!r}).read_bytes())
def peak_kb():
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
before = peak_kb()
try:
    compressed_to_rgb8(msg)
    outcome = "decoded"
except ImageConversionError as error:
    outcome = str(error)
after = peak_kb()
print(json.dumps({{"outcome": outcome, "growth_kb": after - before}}))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert "too large" in measured["outcome"], measured
    # The decoded image alone would be 432 MB (BGR) and the greyscale one 144 MB.
    assert measured["growth_kb"] < 50_000, measured


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff" + b"\x00" * 40, b"GIF89a"])
def test_a_damaged_header_is_rejected_with_a_reason(data):
    with pytest.raises(ImageConversionError, match="cannot decode compressed image"):
        compressed_to_rgb8(CompressedImage(format="png", data=data))
