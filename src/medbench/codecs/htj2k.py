"""High-Throughput JPEG 2000 (HTJ2K, ITU-T T.814 / ISO 15444-15) through OpenJPH.

References
----------
D. Taubman, A. Naman, R. Mathew, M. Smith, O. Watanabe, P.-A. Lemieux, "High throughput
JPEG 2000 (HTJ2K): algorithm, performance and potential", ITU-T T.814 white paper, 2019.
"""

from __future__ import annotations

import numpy as np

from medbench.codecs._headers import check_pixels, check_stream, j2k_size
from medbench.codecs._imagecodecs import ImagecodecsCodec, check_range, container_bits
from medbench.codecs.base import LOSSLESS, Knob, parse_setting
from medbench.image import Image

HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K = "1.2.840.10008.1.2.4.203"
QSTEPS = (0.064, 0.032, 0.016, 0.008, 0.004, 0.002, 0.001)
MIN_QSTEP, MAX_QSTEP = 1e-4, 1.0
MAX_DECOMPOSITIONS = 5  # OpenJPH's default; the jpeg2000 codec also uses 5 (6 resolutions)

# Byte offset of Ssiz (component 0's precision) in a codestream starting SOC, SIZ:
# SOC(2) SIZ(2) Lsiz(2) Rsiz(2) Xsiz..YTOsiz(8 x 4) Csiz(2).
_CSIZ, _SSIZ = 40, 42


class Htj2kCodec(ImagecodecsCodec):
    """HTJ2K: reversible 5/3 for ``lossless``, irreversible 9/7 at fixed step sizes.

    ``qstep=D`` is OpenJPH's base quantization step size as a fraction of the image's
    native dynamic range ``2**bit_depth`` (``qstep=0.002`` on a 12-bit image is a step
    of about 8 grey levels, scaled per subband by OpenJPH); higher = fewer bytes.
    OpenJPH has no rate control, so unlike ``jpeg2000``'s ``ratio=`` the rate follows
    from the step and the image. Five decomposition levels (fewer for small images),
    64x64 code blocks, one tile, raw codestream (``.j2c``, what DICOM stores).

    Precision written: the image's true bit depth (SIZ Ssiz = ``bit_depth - 1``).
    imagecodecs' ``htj2k_encode`` can only declare the storage word (8 or 16 bits), so
    we hand it samples whose coding is exactly that of a ``bit_depth``-bit image and
    then correct the one SIZ byte: for ``lossless`` the samples are offset so that the
    DC level shift (``2**(P-1)``, T.800 Annex G) subtracts ``2**(bit_depth-1)``, and
    for lossy coding they are shifted to the top of the word, which OpenJPH's
    normalisation to ``[-0.5, 0.5)`` maps to the same values a ``bit_depth``-bit image
    gives. The result decodes bit-exact (lossless) in OpenJPH and in OpenJPEG; only
    the reversible path keeps 16-bit subband exponents in QCD (a few bytes of
    zero-bit-plane signalling, valid because QCD is explicit).
    """

    name = "htj2k"
    conventions = "OpenJPH encoder, OpenJPEG decoder, 9/7 at a fixed base step, 5/3 lossless"
    feature = "HTJ2K"
    libraries = ("openjph", "openjpeg")
    bit_depths = tuple(range(1, 17))
    rate_knob = (
        "qstep= base quantization step as a fraction of 2**bit_depth; higher = fewer "
        "bytes; lossless = reversible 5/3"
    )

    def settings(self) -> list[str]:
        return [f"qstep={q:g}" for q in QSTEPS] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("qstep", MIN_QSTEP, MAX_QSTEP, log=True)

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        # OpenJPH writes RPCL order with TLM markers, but only the plain lossless syntax
        # is declared: .202 (RPCL) constrains the codestream beyond what is checked here.
        return HTJ2K_LOSSLESS if setting == LOSSLESS else HTJ2K

    def qstep(self, setting: str) -> float:
        value = parse_setting(setting, "qstep")
        return check_range(setting, value, MIN_QSTEP, MAX_QSTEP, "HTJ2K qstep")

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        lib = self._lib()
        bits, word = image.bit_depth, container_bits(image.bit_depth)
        dtype = image.pixels.dtype
        levels = _decompositions(image)
        if setting == LOSSLESS:
            offset = (1 << (word - 1)) - (1 << (bits - 1))
            samples = (image.pixels.astype(np.uint32) + offset).astype(dtype)
            stream = lib.htj2k_encode(samples, reversible=True, resolutions=levels)
        else:
            step = self.qstep(setting)
            samples = (image.pixels.astype(np.uint32) << (word - bits)).astype(dtype)
            stream = lib.htj2k_encode(samples, level=step, reversible=False, resolutions=levels)
        return set_precision(bytes(stream), word, bits)

    def decode(self, data: bytes) -> np.ndarray:
        """Decode with OpenJPEG's HTJ2K decoder where imagecodecs has it.

        OpenJPH (imagecodecs 2026.3.6) does not clamp lossy reconstructions to the
        sample range: a bright pixel that rings to 256 comes back as 0 in an 8-bit
        image (max_abs_error 255 on `sample`'s tibia tiles). OpenJPEG clamps, and decodes
        the same standard codestream. Decode latencies are therefore OpenJPEG's.
        """
        check_stream("HTJ2K stream", data, j2k_size)
        lib = self._lib()
        if getattr(getattr(lib, "JPEG2K", None), "available", False):
            return check_pixels("HTJ2K stream", lib.jpeg2k_decode(data))
        return check_pixels("HTJ2K stream", lib.htj2k_decode(data))


def _decompositions(image: Image) -> int:
    """Wavelet levels: 5, fewer when the short side is under 256 pixels (as ``jpeg2000``)."""
    short = min(image.height, image.width)
    # imagecodecs reads 0 as "library default" (5), so never go below 1.
    return max(1, min(MAX_DECOMPOSITIONS, int(np.log2(short)) - 3))


def set_precision(stream: bytes, declared: int, bits: int) -> bytes:
    """``stream`` with its single component's SIZ precision changed from ``declared``
    to ``bits`` (unsigned). Raises ``ValueError`` if the header is not what OpenJPH
    writes for one unsigned component of ``declared`` bits."""
    if bits == declared:
        return stream
    if stream[:4] != b"\xff\x4f\xff\x51" or len(stream) <= _SSIZ:
        raise ValueError("HTJ2K codestream does not start with SOC, SIZ")
    if int.from_bytes(stream[_CSIZ:_SSIZ], "big") != 1 or stream[_SSIZ] != declared - 1:
        raise ValueError(
            f"HTJ2K SIZ does not declare one unsigned {declared}-bit component "
            f"(Csiz={int.from_bytes(stream[_CSIZ:_SSIZ], 'big')}, Ssiz={stream[_SSIZ]})"
        )
    return stream[:_SSIZ] + bytes([bits - 1]) + stream[_SSIZ + 1 :]
