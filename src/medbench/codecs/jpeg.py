"""Baseline JPEG (ITU-T T.81) through Pillow's libjpeg, 8-bit grayscale."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

from medbench.codecs._headers import check_stream, jpeg_size
from medbench.codecs.base import Codec, parse_int_setting
from medbench.image import Image

QUALITIES = (5, 10, 20, 30, 50, 70, 80, 90, 95)


class JpegCodec(Codec):
    """JPEG baseline, 8-bit grayscale, Huffman tables optimized per image.

    Deeper images are refused: Pillow's libjpeg is 8-bit only (12-bit JPEG is a
    separate codec). The quality ``q`` is libjpeg's 1–100 scale of the standard
    quantization tables; higher is better quality and more bytes.
    """

    name = "jpeg"
    bit_depths = (8,)
    rate_knob = "q= libjpeg quality 1-100; higher q = higher quality, more bytes"

    def settings(self) -> list[str]:
        return [f"q={q}" for q in QUALITIES]

    def _quality(self, setting: str) -> int:
        return parse_int_setting(setting, "q", 1, 100, "JPEG quality")

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
