"""The image size a classical stream's header declares, read without decoding it.

Each ``*_size`` function returns ``(height, width)``, or ``None`` when the header is not found (the
library's own decoder then says what is wrong). :func:`check_stream` refuses a declared
size above the pixel budget (:mod:`medbench.codecs.limits`) before the library allocates
it. Only the fields needed are parsed, from the standards' layouts:

- JPEG / JPEG-LS (ITU-T T.81 B.2.2, T.87 C.2.2): SOFn / SOF55 segment, ``Y`` then ``X``.
- JPEG 2000 / HTJ2K (T.800 A.5.1): SIZ ``Xsiz - XOsiz`` by ``Ysiz - YOsiz``; JP2 ``ihdr``.
- PNG: ``IHDR`` width, height.
- WebP: ``VP8 `` frame header, ``VP8L`` 14-bit sizes, ``VP8X`` 24-bit canvas.
- AVIF and HEIC (ISO/IEC 23008-12): the ``ispe`` property, width then height.
- JPEG XL (ISO/IEC 18181-1 D.2): the codestream's ``SizeHeader``.

:func:`check_pixels` then checks what a library returned: a corrupt header can declare
a sample precision above 16 bits, which would come back as ``uint32``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from medbench.codecs.limits import check_declared_size
from medbench.errors import MedbenchError

Size = tuple[int, int]
_JPEG_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7}  # 0xF7: JPEG-LS SOF55


def jpeg_size(data: bytes) -> Size | None:
    """Size in the first SOF segment of a JPEG or JPEG-LS stream."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # segments without a length
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return (height, width) if height else None  # 0: height set later by DNL
        pos += 2 + length
    return None


def j2k_size(data: bytes) -> Size | None:
    """Size of a JPEG 2000 codestream (SIZ) or JP2 file (``ihdr``)."""
    if data[:4] == b"\xff\x4f\xff\x51" and len(data) >= 24:
        xsiz, ysiz, x0, y0 = struct.unpack_from(">IIII", data, 8)
        return max(ysiz - y0, 0), max(xsiz - x0, 0)
    at = data.find(b"ihdr", 0, 4096)
    if at >= 0 and at + 12 <= len(data):
        height, width = struct.unpack_from(">II", data, at + 4)
        return height, width
    return None


def png_size(data: bytes) -> Size | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return height, width


def webp_size(data: bytes) -> Size | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) < 30:
        return None
    chunk, body = data[12:16], 20
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[body + 4 : body + 7], "little")
        height = 1 + int.from_bytes(data[body + 7 : body + 10], "little")
        return height, width
    if chunk == b"VP8L" and data[body] == 0x2F:
        bits = int.from_bytes(data[body + 1 : body + 5], "little")
        return 1 + ((bits >> 14) & 0x3FFF), 1 + (bits & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, body + 6)
        return height & 0x3FFF, width & 0x3FFF
    return None


def avif_size(data: bytes) -> Size | None:
    """The largest ``ispe`` (image spatial extents) property of an AVIF file."""
    sizes, at = [], data.find(b"ispe")
    while 0 <= at and at + 16 <= len(data):
        width, height = struct.unpack_from(">II", data, at + 8)  # after version/flags
        sizes.append((height, width))
        at = data.find(b"ispe", at + 4)
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


#: HEIC files (HEVC in HEIF) declare their size in the same ``ispe`` property as AVIF:
#: the coded picture libheif allocates (x265 codes at least 64x64, with even sides; a
#: ``clap`` box crops it to the image), so the budget is checked on the larger size.
heif_size = avif_size


class _Bits:
    """LSB-first bit reader (JPEG XL's order)."""

    def __init__(self, data: bytes, start: int):
        self.value = int.from_bytes(data[start : start + 16], "little")
        self.avail, self.pos = 8 * len(data[start : start + 16]), 0

    def u(self, n: int) -> int:
        if self.pos + n > self.avail:
            raise EOFError
        out = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return out


_JXL_RATIO: dict[int, Callable[[int], int]] = {
    1: lambda y: y, 2: lambda y: y * 12 // 10, 3: lambda y: y * 4 // 3,
    4: lambda y: y * 3 // 2, 5: lambda y: y * 16 // 9, 6: lambda y: y * 5 // 4,
    7: lambda y: y * 2,
}


def jpegxl_size(data: bytes) -> Size | None:
    """Size in a JPEG XL codestream's ``SizeHeader`` (bare, or in a ``jxlc`` box)."""
    start = 2 if data[:2] == b"\xff\x0a" else None
    if start is None:
        at = data.find(b"jxlc")
        if at < 0 or data[at + 4 : at + 6] != b"\xff\x0a":
            return None
        start = at + 6
    bits = _Bits(data, start)

    def u32() -> int:
        return 1 + bits.u((9, 13, 18, 30)[bits.u(2)])

    try:
        if bits.u(1):  # small: multiples of 8 up to 256
            height = 8 * (bits.u(5) + 1)
            ratio = bits.u(3)
            width = 8 * (bits.u(5) + 1) if ratio == 0 else _JXL_RATIO[ratio](height)
        else:
            height = u32()
            ratio = bits.u(3)
            width = u32() if ratio == 0 else _JXL_RATIO[ratio](height)
    except EOFError:
        return None
    return height, width


def check_stream(what: str, data: bytes, size_of: Callable[[bytes], Size | None]) -> None:
    """Refuse ``data`` if its header declares an image above the pixel budget.

    Parameters
    ----------
    what
        The stream's kind for the message (e.g. ``"PNG stream"``).
    data
        The whole stream.
    size_of
        One of this module's ``*_size`` functions.
    """
    size = size_of(bytes(data[:65536]))
    if size is not None:
        check_declared_size(what, *size)


class CorruptStream(MedbenchError):
    """A stream a decoder must not be handed, or whose decoded pixels are not an image."""


def check_ends_with_eoi(what: str, data: bytes) -> None:
    """Refuse a JPEG-family stream without its end-of-image marker (``FFD9``).

    Every stream our encoders write ends with it. CharLS spends seconds per call (or
    loops) on JPEG-LS streams cut inside the scan, so they are refused up front.
    """
    if bytes(data[-2:]) != b"\xff\xd9":
        raise CorruptStream(f"{what} of {len(data)} bytes does not end with the end-of-image "
                            f"marker FFD9; it is truncated or corrupt")


def check_pixels(what: str, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` if they are a 2-D ``uint8``/``uint16`` image, else :class:`CorruptStream`."""
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise CorruptStream(
            f"{what} decodes to {pixels.dtype} samples of shape {pixels.shape}, not a "
            f"grey image of up to 16 bits; its header is corrupt"
        )
    return np.ascontiguousarray(pixels)
