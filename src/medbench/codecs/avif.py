"""AVIF (AV1 intra frames in HEIF) through libavif and libaom."""

from __future__ import annotations

import numpy as np

from medbench.codecs._headers import avif_size, check_pixels, check_stream
from medbench.codecs._imagecodecs import ImagecodecsCodec
from medbench.codecs.base import LOSSLESS, Knob, parse_int_setting
from medbench.image import Image

QUALITIES = (10, 30, 50, 70, 80, 90, 95, 99)
SPEED = 6  # libaom's default speed for libavif (0 slowest .. 10 fastest), pinned


def container_depth(bit_depth: int) -> int:
    """AV1's sample depth for an image: 8, 10 or 12 (the only ones AV1 has)."""
    return 8 if bit_depth <= 8 else 10 if bit_depth <= 10 else 12


class AvifCodec(ImagecodecsCodec):
    """AVIF, 8- to 12-bit grayscale, monochrome (YUV 4:0:0), lossy or lossless.

    ``q=Q`` is libavif's quality 0-100 (mapped to AV1's quantizer, 100 = lossless);
    higher = better quality, more bytes. Speed 6, full range, one tile, libaom.

    Monochrome: imagecodecs sends a 2-D array down libavif's gray path (YUV 4:0:0) but
    codes it losslessly whatever the quality (imagecodecs 2026.3.6: every ``level``
    gives the same bit-exact file). So ``lossless`` uses the 2-D path, and lossy
    settings hand libavif the gray image as
    three equal RGB planes with ``pixelformat='yuv400'``: libavif converts them to luma
    (full-range BT.601 weights sum to 1, so Y equals the gray value) and codes only
    the Y plane, and the file is a 4:0:0 image that decodes back to 2-D.

    Precision written: the image's bit depth where AV1 has it (8, 10, 12); 9-bit images
    are coded as 10-bit and 11-bit as 12-bit samples, using the lower part of the range.
    AV1 has no 13- to 16-bit profile, so deeper images are refused.
    """

    name = "avif"
    conventions = "libavif/libaom via imagecodecs, monochrome 4:0:0, speed 6, full range, one tile"
    feature = "AVIF"
    libraries = ("libavif",)
    bit_depths = tuple(range(8, 13))
    rate_knob = "q= libavif quality 0-100; higher q = higher quality, more bytes; lossless"

    def settings(self) -> list[str]:
        return [f"q={q}" for q in QUALITIES] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("q", 0, 99, integer=True, larger_is_smaller=False)

    def _quality(self, setting: str) -> int:
        # q=100 is lossless, which is the separate ``lossless`` setting.
        return parse_int_setting(setting, "q", 0, 99, "AVIF quality")

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        lib = self._lib()
        depth = container_depth(image.bit_depth)
        if setting == LOSSLESS:
            data = lib.avif_encode(image.pixels, level=100, speed=SPEED, bitspersample=depth)
        else:
            rgb = np.repeat(image.pixels[:, :, None], 3, axis=2)
            data = lib.avif_encode(
                rgb,
                level=self._quality(setting),
                speed=SPEED,
                bitspersample=depth,
                pixelformat="yuv400",
            )
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("AVIF stream", data, avif_size)
        pixels = self._lib().avif_decode(data)
        if pixels.ndim == 3:  # pragma: no cover - 4:0:0 files decode to 2-D
            pixels = pixels[:, :, 0]
        return check_pixels("AVIF stream", pixels)
