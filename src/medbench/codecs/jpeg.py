"""Baseline JPEG (ITU-T T.81) through Pillow's libjpeg, 8-bit grayscale."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image as PILImage

from medbench.codecs._headers import check_stream, jpeg_size
from medbench.codecs.base import Codec, Knob, parse_int_setting
from medbench.errors import UnsupportedInput
from medbench.image import Image

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
QUALITIES = (5, 10, 20, 30, 50, 70, 80, 90, 95)


class JpegCodec(Codec):
    """JPEG baseline, 8-bit grayscale, Huffman tables optimized per image.

    Deeper images are refused: Pillow's libjpeg is 8-bit only (12-bit JPEG is a
    separate codec). The quality ``q`` is libjpeg's 1–100 scale of the standard
    quantization tables; higher is better quality and more bytes.
    """

    name = "jpeg"
    conventions = "libjpeg via Pillow, baseline, 8-bit, Huffman tables optimized per image"
    bit_depths = (8,)
    rate_knob = "q= libjpeg quality 1-100; higher q = higher quality, more bytes"

    def library(self, setting: str) -> str:
        """``libjpeg-turbo <version> via Pillow <version>`` (the libjpeg Pillow was built
        with; its wheels bundle libjpeg-turbo)."""
        return pillow_jpeg()

    def settings(self) -> list[str]:
        return [f"q={q}" for q in QUALITIES]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("q", 1, 100, integer=True, larger_is_smaller=False)

    def _quality(self, setting: str) -> int:
        return parse_int_setting(setting, "q", 1, 100, "JPEG quality")

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        if bit_depth != 8:  # PS3.5 A.4.1: baseline (Process 1) is 8-bit only
            raise UnsupportedInput(
                f"JPEG baseline (1.2.840.10008.1.2.4.50) holds 8-bit images only, not "
                f"{bit_depth}-bit; use jpeg12 (JPEG extended, 12-bit) for deeper images"
            )
        return JPEG_BASELINE

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        buf = io.BytesIO()
        PILImage.fromarray(image.pixels, mode=None).save(
            buf, format="JPEG", quality=self._quality(setting), optimize=True
        )
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("JPEG stream", data, jpeg_size)
        with PILImage.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)


@lru_cache(maxsize=1)
def pillow_jpeg() -> str:
    """The libjpeg Pillow codes JPEG with, and Pillow's version."""
    import PIL
    from PIL import features

    try:
        if features.check_feature("libjpeg_turbo"):
            return (f"libjpeg-turbo {features.version_feature('libjpeg_turbo')} via Pillow "
                    f"{PIL.__version__}")
        return f"libjpeg {features.version('jpg')} via Pillow {PIL.__version__}"
    except (ValueError, KeyError):  # a Pillow without these feature names
        return f"libjpeg via Pillow {PIL.__version__}"
