"""JPEG 2000 Part 1 through glymur and OpenJPEG, 1- to 16-bit grayscale.

The bitstream is the raw J2K codestream (what DICOM stores), without JP2 boxes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medbench.codecs import _openjpeg
from medbench.codecs._headers import check_pixels, check_stream, j2k_size
from medbench.codecs._openjpeg import import_glymur
from medbench.codecs.base import LOSSLESS, Codec, Knob, parse_setting
from medbench.errors import CodecUnavailable
from medbench.image import Image

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
RATIOS = (160, 80, 40, 20, 10, 5)
#: Code-block sizes a setting may ask for (``ratio=R,cb=32``); 64 is OpenJPEG's default.
CODEBLOCKS = (64, 32, 16)


@dataclass(frozen=True)
class CodeblockKnob(Knob):
    """The ``ratio`` knob at a smaller code-block size: settings ``ratio=R,cb=32``.

    OpenJPEG truncates each code-block at a coding-pass boundary, so its rate moves in
    steps of one pass of one code-block: on a small image (few 64×64 blocks) a step can
    exceed 2 % of the rate. Smaller blocks have smaller passes, hence finer steps, at a
    small cost in coding efficiency (more block side information).
    """

    codeblock: int = 64

    def setting_for(self, value: float) -> str:
        return f"{super().setting_for(value)},cb={self.codeblock}"


class Jpeg2000Codec(Codec):
    """JPEG 2000: irreversible 9/7 wavelet at fixed ratios, reversible 5/3 for lossless.

    ``ratio=R`` asks OpenJPEG's rate control for ``R``:1 against *native* storage, i.e.
    ``bit_depth`` bits per pixel: a 12-bit image at ``ratio=10`` targets 1.2 bpp. The
    codestream declares the image's true precision (e.g. 12 bits, not 16), because the
    rate allocation and the number of coded bit planes depend on it. Higher ratio =
    fewer bytes. Six resolution levels (glymur's default), one quality layer, 64×64
    code-blocks; ``ratio=R,cb=32`` (or ``cb=16``) codes with smaller code-blocks, whose
    finer truncation steps let rate matching (``run --target``) land within tolerance
    where the default's steps are too coarse (:meth:`finer_knobs`).
    """

    name = "jpeg2000"
    conventions = ("OpenJPEG via glymur, irreversible 9/7 at the requested ratio, "
                   "reversible 5/3 lossless, true precision in SIZ")
    bit_depths = tuple(range(1, 17))
    rate_knob = "ratio= compression ratio vs native bit depth; higher = smaller; lossless = 5/3"

    def unavailable_reason(self) -> str | None:
        try:
            return precision_problem(import_glymur())
        except CodecUnavailable as exc:
            return str(exc)

    def library(self, setting: str) -> str:
        """``OpenJPEG <version> (<file glymur loaded>)``: see :mod:`medbench.codecs._openjpeg`."""
        return _openjpeg.describe()

    def settings(self) -> list[str]:
        return [f"ratio={r}" for r in RATIOS] + [LOSSLESS]

    def knob(self, bit_depth: int) -> Knob | None:
        return Knob("ratio", 1.0, 1000.0, log=True)

    def finer_knobs(self, bit_depth: int) -> list[Knob]:
        """The same knob at smaller code-blocks (finer rate steps), tried in this order
        by a rate-matching search when :meth:`knob`'s steps skip the tolerance."""
        return [CodeblockKnob("ratio", 1.0, 1000.0, log=True, codeblock=size)
                for size in CODEBLOCKS[1:]]

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        return J2K_LOSSLESS if setting == LOSSLESS else J2K

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        glymur = import_glymur()
        kwargs: dict = {"irreversible": False}
        if setting != LOSSLESS:
            rate, _, block = setting.partition(",")
            ratio = parse_setting(rate, "ratio")
            if ratio < 1:
                raise ValueError(f"JPEG 2000 ratio must be >= 1, got {setting!r}")
            kwargs = {"irreversible": True, "cratios": [ratio]}
            if block:  # only when asked: the default settings' streams stay as they were
                size = parse_setting(block, "cb")
                if size not in CODEBLOCKS:
                    raise ValueError(f"JPEG 2000 code-block size must be one of "
                                     f"{', '.join(map(str, CODEBLOCKS))}, got {setting!r}")
                kwargs["cbsize"] = (int(size), int(size))
        # Fewer decomposition levels for tiny images (each level halves the size).
        numres = max(1, min(6, int(np.log2(min(image.height, image.width))) - 2))
        writer = _precision_writer(glymur)
        with tempfile.TemporaryDirectory(prefix="medbench-j2k-") as tmp:
            path = Path(tmp) / "image.j2k"
            writer(str(path), data=image.pixels, precision=image.bit_depth, numres=numres, **kwargs)
            return _check_precision(path.read_bytes(), image.bit_depth)

    def decode(self, data: bytes) -> np.ndarray:
        check_stream("JPEG 2000 stream", data, j2k_size)
        glymur = import_glymur()
        with tempfile.TemporaryDirectory(prefix="medbench-j2k-") as tmp:
            path = Path(tmp) / "image.j2k"
            path.write_bytes(data)
            pixels = glymur.Jp2k(str(path))[:]
        if pixels.ndim == 3:
            pixels = pixels[:, :, 0]
        return check_pixels("JPEG 2000 stream", pixels)


#: The private glymur method that fills OpenJPEG's component parameters (precision
#: included) before a write; :func:`_precision_writer` overrides it.
PRECISION_HOOK = "_populate_comptparms"
_WRITERS: dict[type, type] = {}


def precision_problem(glymur) -> str | None:
    """Why this glymur cannot write a JPEG 2000 stream at an image's true precision, or
    None when it can (its ``Jp2k`` still has :data:`PRECISION_HOOK`)."""
    if hasattr(glymur.Jp2k, PRECISION_HOOK):
        return None
    return (f"glymur {getattr(glymur, '__version__', '?')} no longer has Jp2k."
            f"{PRECISION_HOOK}, through which medbench writes a 12-bit image as 12-bit "
            "(not 16-bit) JPEG 2000; pip install 'glymur==0.14.8' (which has it) until "
            "medbench supports this glymur")


def _precision_writer(glymur):
    """A glymur ``Jp2k`` that writes the true precision instead of only 8 or 16 bits.

    glymur fills OpenJPEG's component parameters with 8 bits for uint8 and 16 for
    anything deeper; we set the precision the image really has through the private hook
    :data:`PRECISION_HOOK`. A glymur without it is refused (:func:`precision_problem`)
    rather than left to write 8/16-bit streams, and :meth:`Jpeg2000Codec.encode` checks
    the precision each stream declares.
    """
    problem = precision_problem(glymur)
    if problem is not None:
        raise CodecUnavailable(problem)
    base = glymur.Jp2k
    if base not in _WRITERS:
        class PrecisionJp2k(base):
            def __init__(self, filename, *, precision: int, **kwargs):
                self._medbench_precision = precision
                super().__init__(filename, **kwargs)

            def _populate_comptparms(self, img_array):
                super()._populate_comptparms(img_array)
                for comp in self._comptparms:
                    comp.prec = self._medbench_precision
                    comp.bpp = self._medbench_precision

        _WRITERS[base] = PrecisionJp2k
    return _WRITERS[base]


def _check_precision(stream: bytes, bit_depth: int) -> bytes:
    """``stream`` if its SIZ declares ``bit_depth``-bit samples (T.800 A.5.1, ``Ssiz``)."""
    declared = (stream[42] & 0x7F) + 1 if len(stream) > 42 else None
    if declared != bit_depth:
        raise RuntimeError(f"glymur wrote a JPEG 2000 stream declaring {declared}-bit "
                           f"samples for a {bit_depth}-bit image; its precision hook "
                           f"{PRECISION_HOOK} no longer takes effect, so this glymur "
                           "cannot be used (pip install 'glymur==0.14.8')")
    return stream
