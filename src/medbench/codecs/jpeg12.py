"""JPEG (ITU-T T.81) at 12-bit precision through libjpeg-turbo, as DICOM stores it.

DICOM's "JPEG Extended (Process 2 & 4)" transfer syntax carries 12-bit radiographs as
12-bit DCT JPEG, and "JPEG Lossless, First-Order Prediction (Process 14, SV1)" carries
them losslessly; both come from the libjpeg-turbo (3.x) that imagecodecs bundles.
"""

from __future__ import annotations

import numpy as np

from medbench.codecs._headers import check_pixels, check_stream, jpeg_size
from medbench.codecs._imagecodecs import REQUIREMENT, ImagecodecsCodec
from medbench.codecs.base import LOSSLESS, Knob, parse_int_setting
from medbench.image import Image

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"  # Process 2 & 4: 8- or 12-bit DCT
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"  # Process 14, predictor 1
QUALITIES = (5, 10, 20, 30, 50, 70, 80, 90, 95)
LOSSLESS_PREDICTOR = 1  # Ra (left neighbour): DICOM's "SV1" syntax 1.2.840.10008.1.2.4.70


class Jpeg12Codec(ImagecodecsCodec):
    """JPEG with 12-bit sample precision for 9- to 12-bit input, 8-bit for 8-bit input.

    ``q=Q`` is libjpeg's 1-100 quality scaling of the standard (Annex K) quantization
    tables, applied unchanged to 12-bit samples; higher = better quality, more bytes.
    Because 12-bit DCT coefficients are 16 times larger while the tables are not, a
    given ``q`` is much finer relative to the range at 12 bits than at 8 bits (on the
    ``sample`` chest tiles requantized to 12 bits, ``q=50`` gives 1.6 bpp and ``q=5``
    0.3 bpp); the sweep therefore reaches down to ``q=5``.
    Huffman tables are optimized per image, no chroma (one component).

    Precision written: 8 bits for 8-bit input (identical to baseline JPEG) and 12 bits
    for 9- to 12-bit input -- DCT JPEG has only these two precisions, so 9- to 11-bit
    images are coded as 12-bit samples that use the lower part of the range. Deeper
    images are refused (12-bit JPEG cannot hold them). ``lossless`` is JPEG Process 14
    (SOF3) with predictor 1 at the image's exact bit depth (P = ``bit_depth``).
    """

    name = "jpeg12"
    conventions = ("libjpeg-turbo via imagecodecs, 12-bit precision above 8 bits, "
                   "Annex K tables scaled by q")
    feature = "JPEG8"  # libjpeg-turbo 3 codes 8-, 12- and lossless 2..16-bit in one library
    libraries = ("libjpeg_turbo",)
    bit_depths = tuple(range(8, 13))
    rate_knob = "q= libjpeg quality 1-100; higher q = higher quality, more bytes; lossless = SV1"

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and not getattr(self._lib().JPEG8, "all_precisions", False):
            # a legacy libjpeg build codes 8-bit only
            return (
                f"the installed imagecodecs was built with {self._lib().jpeg8_version()}, "
                f"which lacks 12-bit and lossless JPEG; pip install '{REQUIREMENT}' "
                "(its wheels bundle libjpeg-turbo 3)"
            )
        return reason

    def settings(self) -> list[str]:
        return [f"q={q}" for q in QUALITIES] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("q", 1, 100, integer=True, larger_is_smaller=False)

    def _quality(self, setting: str) -> int:
        return parse_int_setting(setting, "q", 1, 100, "JPEG quality")

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        if setting == LOSSLESS:
            return JPEG_LOSSLESS_SV1
        # 8-bit input is coded at 8-bit precision: the baseline syntax; deeper at 12 bits.
        return JPEG_BASELINE if bit_depth <= 8 else JPEG_EXTENDED

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        lib = self._lib()
        if setting == LOSSLESS:
            data = lib.jpeg8_encode(
                image.pixels,
                lossless=True,
                predictor=LOSSLESS_PREDICTOR,
                bitspersample=image.bit_depth,
            )
        else:
            precision = 8 if image.bit_depth <= 8 else 12
            data = lib.jpeg8_encode(
                image.pixels,
                level=self._quality(setting),
                optimize=True,
                bitspersample=precision,
            )
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("12-bit JPEG stream", data, jpeg_size)
        return check_pixels("12-bit JPEG stream", self._lib().jpeg8_decode(data))
