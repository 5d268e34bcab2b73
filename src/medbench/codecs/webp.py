"""WebP (VP8 lossy, VP8L lossless) through libwebp, 8-bit only."""

from __future__ import annotations

import numpy as np

from medbench.codecs._headers import check_stream, webp_size
from medbench.codecs._imagecodecs import ImagecodecsCodec
from medbench.codecs.base import LOSSLESS, Knob, parse_int_setting
from medbench.errors import UnsupportedInput
from medbench.image import Image

QUALITIES = (5, 10, 20, 30, 50, 70, 80, 90, 95)
METHOD = 4  # libwebp's default effort (0 fastest .. 6 slowest), pinned
# ITU-R BT.601 luma weights x 1000 (what Pillow's convert("L") uses).
_LUMA = np.array([299, 587, 114], dtype=np.uint32)


class WebpCodec(ImagecodecsCodec):
    """WebP, 8-bit grayscale: lossy VP8 at a quality, or lossless VP8L.

    ``q=Q`` is libwebp's quality 0-100; higher = better quality, more bytes. Method 4.

    WebP has no gray format: the image is given as three equal RGB planes. Lossy VP8
    stores limited-range YUV 4:2:0, so even ``q=100`` is not exact (8-bit gray goes
    through 220 luma levels) and the decoded R, G, B differ by rounding; we decode to
    gray with BT.601 luma weights, as a gray viewer would. ``lossless`` (VP8L) is exact
    and its colour transforms make the two redundant planes nearly free.

    Precision written: 8 bits; WebP has no deeper samples, so deeper images are refused.
    """

    name = "webp"
    conventions = ("libwebp via imagecodecs, VP8 (limited-range YUV 4:2:0) at q, "
                   "method 4, or VP8L lossless")
    feature = "WEBP"
    libraries = ("libwebp",)
    bit_depths = (8,)
    rate_knob = "q= libwebp quality 0-100; higher q = higher quality, more bytes; lossless"

    def settings(self) -> list[str]:
        return [f"q={q}" for q in QUALITIES] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("q", 0, 100, integer=True, larger_is_smaller=False)

    def check(self, image: Image) -> None:
        if image.bit_depth != 8:
            raise UnsupportedInput(
                f"webp stores only 8-bit samples, so it cannot code the {image.bit_depth}-bit "
                f"image {image.image_id} without losing bits; use --bit-depth 8 (or "
                f"--protocol paper) for webp, or a codec for deeper images"
            )

    def _quality(self, setting: str) -> int:
        return parse_int_setting(setting, "q", 0, 100, "WebP quality")

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        rgb = np.repeat(image.pixels[:, :, None], 3, axis=2)
        if setting == LOSSLESS:
            data = self._lib().webp_encode(rgb, lossless=True, method=METHOD)
        else:
            q = self._quality(setting)
            data = self._lib().webp_encode(rgb, level=q, lossless=False, method=METHOD)
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("WebP stream", data, webp_size)
        rgb = self._lib().webp_decode(data, hasalpha=False)
        if rgb.ndim == 2:  # pragma: no cover - libwebp always returns RGB(A)
            return np.ascontiguousarray(rgb)
        luma = (rgb[:, :, :3].astype(np.uint32) @ _LUMA + 500) // 1000
        return luma.astype(np.uint8)
