"""HEVC intra (x265) in a HEIF still image, through pillow-heif's libheif.

The anchor learned-compression papers report against: BPG and "HEVC intra" rows are
HEVC Main/Main Still Picture intra coding, as here. VVC intra would be the next anchor,
but no VVC encoder installs from the package registries this project uses.
"""

from __future__ import annotations

import importlib
import io
from functools import cache
from types import ModuleType

import numpy as np

from medbench.codecs._headers import CorruptStream, check_pixels, check_stream, heif_size
from medbench.codecs.base import LOSSLESS, Codec, Knob, parse_int_setting
from medbench.errors import CodecUnavailable
from medbench.image import Image

REQUIREMENT = "pillow-heif>=1.1"
#: The RD ladder: x265 quantization parameters, low to high rate (HM's common test
#: conditions use 22, 27, 32 and 37; 47..12 cover JPEG 2000's 160:1..5:1 on 8 bits).
QPS = (47, 42, 37, 32, 27, 22, 17, 12)
#: Highest QP HEVC has; the lowest is ``-6 * (bit depth - 8)`` (H.265 7.4.9.14).
QP_MAX = 51
#: x265 options, pinned so that the stream depends on nothing but the image and QP:
#: libheif's default preset; tune psnr, and libheif's psycho-visual options (which it
#: sets after the tune) turned off again, because medbench scores PSNR; no thread pool
#: (one thread: the stream and the encode latency do not depend on the machine's
#: cores; libde265 decodes with pillow-heif's default of up to 4 threads).
X265_OPTIONS = {
    "preset": "slow", "tune": "psnr", "x265:aq-mode": "0", "x265:psy-rd": "0",
    "x265:psy-rdoq": "0", "x265:pools": "none", "x265:frame-threads": "1",
}


def coded_depth(bit_depth: int) -> int:
    """x265's sample depth for an image: 8, 10 or 12 (its Main, Main10, Main12 profiles)."""
    return 8 if bit_depth <= 8 else 10 if bit_depth <= 10 else 12


def qp_low(bit_depth: int) -> int:
    """The lowest QP at ``bit_depth``'s coded depth (finer than 8-bit QP 0)."""
    return -6 * (coded_depth(bit_depth) - 8)


def import_pillow_heif() -> ModuleType:
    """pillow_heif, if installed and built with the x265 encoder.

    Raises
    ------
    CodecUnavailable
        Naming the pip requirement when the package or its HEVC encoder is missing.
    """
    try:
        module = importlib.import_module("pillow_heif")
    except ImportError as exc:
        raise CodecUnavailable(
            f"pillow-heif is not installed ({exc}); pip install '{REQUIREMENT}'") from exc
    if "x265" not in module.libheif_info().get("encoders", {}):
        raise CodecUnavailable(
            f"the installed pillow-heif {module.__version__} has no x265 encoder; "
            f"pip install --force-reinstall '{REQUIREMENT}' (the PyPI wheels bundle it)")
    return module


@cache
def libraries() -> str:
    """``pillow-heif 1.9.0 (libheif 1.23.7, x265 4.3+1-…, libde265 1.1.3)``."""
    try:
        module = import_pillow_heif()
    except CodecUnavailable as exc:
        return f"pillow-heif unavailable ({exc})"
    info = module.libheif_info()
    x265 = info.get("encoders", {}).get("x265", "?").replace("x265 HEVC encoder ", "")
    de265 = info.get("decoders", {}).get("libde265", "?")
    de265 = de265.replace("libde265 HEVC decoder, version ", "")
    return (f"pillow-heif {module.__version__} (libheif {info.get('libheif', '?')}, "
            f"x265 {x265.strip('()')}, libde265 {de265})")


class HevcCodec(Codec):
    """HEVC intra, 8- to 12-bit grayscale, monochrome (4:0:0), lossy or lossless.

    ``qp=N`` is x265's constant quantization parameter (``--qp``): lower = finer
    quantization, more bytes; each 6 steps halve or double the quantizer step. The
    ladder runs from QP 47 to 12; ``run --target`` may set any integer from
    :func:`qp_low` to 51. ``lossless`` is x265's lossless mode (transform and
    quantization bypassed), decoded bit-exact.

    Coding: one intra picture, x265 preset slow, tune psnr without adaptive quantization
    or psycho-visual RD (see :data:`X265_OPTIONS`), full range, written by libheif as
    the primary item of a HEIF file (``heix`` brand: 4:0:0 is a range extension) and
    decoded by libde265. x265 codes at least 64x64 pixels with even sides (libheif pads
    by repeating edges); the file's ``clap`` box crops the decode back to the image.

    Rate: the whole HEIF file counts, as every codec's whole stream does: the picture's
    NAL units in ``mdat`` plus the boxes that describe it (``ftyp``, and in ``meta``
    ``hdlr``, ``pitm``, ``iinf``, ``iloc``, ``ispe``, ``clap``, ``pixi`` and ``hvcC``, which holds
    the VPS, SPS and PPS a raw HEVC stream would carry too). No colour (``colr``) box is
    written: a grey image needs none. Everything outside ``mdat`` takes about 350
    bytes (0.043 bpp at 256², 0.003 bpp at 1024²); BPG's own container is smaller, so papers'
    BPG rows are slightly cheaper at very low rates for the same HEVC payload.

    Precision written: the image's bit depth where HEVC's Main profiles have it (8, 10,
    12); 9-bit images are coded as 10-bit and 11-bit as 12-bit samples, using the lower
    part of the range (libheif takes them MSB-aligned in 16 bits, so they are shifted up
    by ``16 - depth`` and back on decode). x265 has no 13- to 16-bit build here
    (HEVC's RExt 16-bit profiles are not in it), so deeper images are refused.
    """

    name = "hevc"
    conventions = ("x265 via libheif (pillow-heif), HEIF, intra, monochrome 4:0:0, preset "
                   "slow, tune psnr, no AQ or psy-rd, constant QP, full range, one encoder thread")
    bit_depths = tuple(range(8, 13))
    rate_knob = ("qp= x265 quantization parameter 51 down to -6*(depth-8); lower qp = "
                 "higher quality, more bytes; lossless")

    def unavailable_reason(self) -> str | None:
        try:
            import_pillow_heif()
        except CodecUnavailable as exc:
            return str(exc)
        return None

    def library(self, setting: str) -> str:
        return libraries()

    def settings(self) -> list[str]:
        return [f"qp={qp}" for qp in QPS] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("qp", qp_low(bit_depth), QP_MAX, integer=True)

    def _qp(self, setting: str, bit_depth: int) -> int:
        return parse_int_setting(setting, "qp", qp_low(bit_depth), QP_MAX,
                                 f"HEVC QP at {coded_depth(bit_depth)} bits")

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        heif = import_pillow_heif()
        depth = coded_depth(image.bit_depth)
        options = dict(X265_OPTIONS)
        if setting == LOSSLESS:
            quality = -1  # libheif's lossless flag: x265 --lossless
        else:
            quality = 50  # ignored: the constant QP below replaces libheif's CRF
            options["x265:qp"] = str(self._qp(setting, image.bit_depth))
        if depth == 8:
            mode, data, extra = "L", image.pixels.astype(np.uint8).tobytes(), {}
        else:
            shifted = image.pixels.astype(np.uint16) << (16 - depth)
            mode, data, extra = "L;16", shifted.tobytes(), {"bit_depth": depth}
        out = io.BytesIO()
        heif.encode(mode, (image.width, image.height), data, out, quality=quality,
                    enc_params=options, save_nclx_profile=False, **extra)
        return out.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("HEIF stream", data, heif_size)
        heif = import_pillow_heif()
        picture = heif.open_heif(io.BytesIO(bytes(data)), convert_hdr_to_8bit=False)
        depth = int(picture.info.get("bit_depth", 8))
        if not 8 <= depth <= 16:
            raise CorruptStream(f"HEIF stream declares {depth}-bit samples; its header is "
                                f"corrupt")
        pixels = check_pixels("HEIF stream", np.asarray(picture))
        if pixels.dtype == np.uint16:  # libheif returns samples MSB-aligned in 16 bits
            pixels = pixels >> (16 - depth)
        return np.ascontiguousarray(pixels)
