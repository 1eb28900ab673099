"""Pixel decoders: backbone features -> (mask_features at 1/4, [1/32, 1/16, 1/8] maps for the decoder)."""

from pmp_ros.model.pixel_decoder.build import build_pixel_decoder
from pmp_ros.model.pixel_decoder.fpn import FPNPixelDecoder
from pmp_ros.model.pixel_decoder.msdeform import MSDeformAttnPixelDecoder

__all__ = ["build_pixel_decoder", "FPNPixelDecoder", "MSDeformAttnPixelDecoder"]
