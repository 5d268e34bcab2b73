"""PNG (ISO/IEC 15948) through libpng: the lossless reference at any depth up to 16 bits."""

from __future__ import annotations

import numpy as np

from medbench.codecs._headers import check_pixels, check_stream, png_size
from medbench.codecs._imagecodecs import ImagecodecsCodec
from medbench.codecs.base import LOSSLESS
from medbench.image import Image

LEVEL = 9  # zlib's strongest level: PNG as a reference should not be handicapped


class PngCodec(ImagecodecsCodec):
    """PNG, 1- to 16-bit grayscale, lossless only (deflate, libpng's adaptive filters).

    Precision written: 8 bits for images up to 8 bits and 16 bits above -- PNG gray has
    only 1, 2, 4, 8 and 16-bit samples and imagecodecs writes the storage word. Values
    are stored as they are (a 12-bit image uses 0..4095 of the 16-bit range, not shifted
    up), so decode returns the exact pixels; the unused high bits cost deflate little.
    No sBIT chunk (imagecodecs writes none); zlib level 9.
    """

    name = "png"
    conventions = "libpng/zlib level 9 via imagecodecs, 8- or 16-bit storage, values unshifted"
    feature = "PNG"
    libraries = ("libpng", "zlib")
    bit_depths = tuple(range(1, 17))
    rate_knob = "lossless only (no rate knob)"

    def settings(self) -> list[str]:
        return [LOSSLESS]

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        self.check_setting(setting)
        return bytes(self._lib().png_encode(image.pixels, level=LEVEL))

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("PNG stream", data, png_size)
        return check_pixels("PNG stream", self._lib().png_decode(data))
