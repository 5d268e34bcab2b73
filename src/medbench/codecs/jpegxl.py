"""JPEG XL (ISO/IEC 18181) through libjxl.

References
----------
J. Alakuijala et al., "JPEG XL next-generation image compression architecture and coding
tools", Proc. SPIE 11137, Applications of Digital Image Processing XLII, 2019.
doi:10.1117/12.2529237
"""

from __future__ import annotations

import numpy as np

from medbench.codecs._headers import check_pixels, check_stream, jpegxl_size
from medbench.codecs._imagecodecs import ImagecodecsCodec, check_range
from medbench.codecs.base import LOSSLESS, Knob, parse_setting
from medbench.errors import UnsupportedInput
from medbench.image import Image

JPEGXL_LOSSLESS = "1.2.840.10008.1.2.4.110"  # PS3.5 A.4.15 (2024)
JPEGXL = "1.2.840.10008.1.2.4.112"

DISTANCES = (8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.1)
MIN_DISTANCE, MAX_DISTANCE = 0.01, 25.0  # libjxl's lossy range (0 would mean lossless)
EFFORT = 7  # libjxl's default effort, pinned so results do not move with the default


class JpegXlCodec(ImagecodecsCodec):
    """JPEG XL, 1- to 16-bit grayscale: VarDCT at a Butteraugli distance, or lossless.

    ``distance=D`` is libjxl's target Butteraugli distance (1.0 is "visually lossless"
    for a viewer of the full range); higher = fewer bytes. The distance is perceptual
    and judged on the declared range, which is why the true bit depth matters here
    even more than for the rate: a 12-bit image declared as 16-bit looks 16 times
    darker to the encoder and is coded coarser at the same distance. ``lossless`` is
    modular mode (``lossless=True``). Effort 7, single frame, bare codestream (no
    container box).

    Precision written: the image's true bit depth (``bitspersample=bit_depth``, the
    codestream's ``bits_per_sample``); the decoder returns it in 8 or 16-bit words.
    """

    name = "jpegxl"
    conventions = ("libjxl via imagecodecs, "
                   "VarDCT at a Butteraugli distance on the true range, or lossless")
    feature = "JPEGXL"
    libraries = ("libjxl",)
    bit_depths = tuple(range(1, 17))
    rate_knob = "distance= Butteraugli distance; higher = fewer bytes; lossless = modular"

    def settings(self) -> list[str]:
        return [f"distance={d:g}" for d in DISTANCES] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("distance", MIN_DISTANCE, MAX_DISTANCE, log=True)

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        import pydicom
        from pydicom.uid import UID

        syntax = JPEGXL_LOSSLESS if setting == LOSSLESS else JPEGXL
        if not UID(syntax).is_transfer_syntax:  # pydicom 3.0 predates the JPEG XL syntaxes
            raise UnsupportedInput(
                f"JPEG XL transfer syntax {syntax} is unknown to pydicom "
                f"{pydicom.__version__}, which could not read the file back; upgrade "
                "pydicom to a release that knows it"
            )
        return syntax

    def distance(self, setting: str) -> float:
        value = parse_setting(setting, "distance")
        return check_range(setting, value, MIN_DISTANCE, MAX_DISTANCE, "JPEG XL distance")

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        lib = self._lib()
        if setting == LOSSLESS:
            kwargs: dict = {"lossless": True}
        else:
            kwargs = {"distance": self.distance(setting), "lossless": False}
        data = lib.jpegxl_encode(
            image.pixels,
            effort=EFFORT,
            bitspersample=image.bit_depth,
            usecontainer=False,
            **kwargs,
        )
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("JPEG XL stream", data, jpegxl_size)
        pixels = self._lib().jpegxl_decode(data)
        if pixels.ndim == 3:  # a gray codestream decodes to 2-D; be safe with (h, w, 1)
            pixels = pixels[:, :, 0]
        return check_pixels("JPEG XL stream", pixels)
