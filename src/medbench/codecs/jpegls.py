"""JPEG-LS (ITU-T T.87 / ISO 14495-1) through CharLS: lossless and near-lossless.

References
----------
M. J. Weinberger, G. Seroussi, G. Sapiro, "The LOCO-I lossless image compression
algorithm: principles and standardization into JPEG-LS", IEEE Trans. Image Process. 9(8),
1309-1324, 2000. doi:10.1109/83.855427
"""

from __future__ import annotations

import numpy as np

from medbench.codecs import _charls
from medbench.codecs._headers import check_ends_with_eoi, check_pixels, check_stream, jpeg_size
from medbench.codecs._imagecodecs import ImagecodecsCodec, container_bits
from medbench.codecs.base import LOSSLESS, Knob, parse_setting
from medbench.errors import UnsupportedInput
from medbench.image import Image

JPEGLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEGLS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
NEARS = (16, 8, 4, 2, 1)
MAX_NEAR = 255  # T.87 bounds NEAR by min(255, MAXVAL/2); we refuse larger values


class JpegLsCodec(ImagecodecsCodec):
    """JPEG-LS, 2- to 16-bit grayscale, lossless and near-lossless.

    ``near=N`` is the standard's NEAR parameter: every decoded pixel is within ``N``
    grey levels of the original (``max_abs_error <= N``, checked on every row); higher
    ``N`` = fewer bytes. ``lossless`` is ``N = 0``.

    Precision written: the image's true bit depth (SOF55 P = ``bit_depth``, e.g. 12, not
    16), by calling the CharLS library that the imagecodecs wheel bundles (see
    :mod:`medbench.codecs._charls`), because JPEG-LS derives MAXVAL, its context thresholds
    and the escape limit from P. Where no CharLS shared library can be loaded (e.g. a
    build that links CharLS statically), we fall back to ``imagecodecs.jpegls_encode``,
    which can only declare 8 or 16 bits, and then accept only 8- and 16-bit images.
    The stream has no SPIFF header (DICOM stores none); default T1..T3 and RESET.
    """

    name = "jpegls"
    conventions = "CharLS, true precision P, NEAR = near (0 lossless)"
    feature = "JPEGLS"
    libraries = ("charls",)
    bit_depths = tuple(range(2, 17))
    rate_knob = (
        "near= JPEG-LS NEAR, max absolute error in grey levels; higher = fewer bytes; "
        "lossless = NEAR 0"
    )

    def settings(self) -> list[str]:
        return [f"near={n}" for n in NEARS] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        # T.87 bounds NEAR by MAXVAL/2 as well as by 255.
        return Knob("near", 1, max(1, min(MAX_NEAR, ((1 << bit_depth) - 1) // 2)), integer=True)

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        return JPEGLS_LOSSLESS if setting == LOSSLESS else JPEGLS_NEAR_LOSSLESS

    def near(self, setting: str) -> int:
        """The NEAR parameter of a setting; out-of-range values raise, never clamp."""
        if setting == LOSSLESS:
            return 0
        value = parse_setting(setting, "near")
        if value != int(value) or not 1 <= value <= MAX_NEAR:
            raise ValueError(
                f"JPEG-LS near must be an integer 1..{MAX_NEAR} (or 'lossless'), got {setting!r}"
            )
        return int(value)

    def max_error(self, setting: str) -> int | None:
        return self.near(setting)

    def library(self, setting: str) -> str:
        """The CharLS that encodes (its file: the wheel's or the system's) and the
        imagecodecs that decodes; imagecodecs' own CharLS where none loads directly."""
        direct = _charls.describe()
        decoder = super().library(setting)
        return f"{direct}, decoded by {decoder}" if direct else decoder

    def check(self, image: Image) -> None:
        super().check(image)
        if _charls.load_charls() is None and image.bit_depth != container_bits(image.bit_depth):
            raise UnsupportedInput(
                f"jpegls cannot declare {image.bit_depth}-bit precision here "
                f"({image.image_id}): {_charls.reason()}"
            )

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        near = self.near(setting)
        if 2 * near > image.peak:  # T.87: NEAR <= min(255, floor(MAXVAL / 2))
            raise UnsupportedInput(
                f"JPEG-LS near={near} is too large for {image.bit_depth}-bit images "
                f"({image.image_id}); T.87 allows at most {image.peak // 2}"
            )
        if _charls.load_charls() is not None:
            return _charls.encode(image.pixels, image.bit_depth, near)
        return bytes(self._lib().jpegls_encode(image.pixels, level=near))

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("JPEG-LS stream", data, jpeg_size)
        check_ends_with_eoi("JPEG-LS stream", data)
        return check_pixels("JPEG-LS stream", self._lib().jpegls_decode(data))
