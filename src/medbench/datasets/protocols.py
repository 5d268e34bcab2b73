"""Protocols: how an image is prepared before coding, as named pure functions.

``paper``  256×256, anti-aliased resize, 8 bits (what the seed paper did).
``native`` native size and bit depth.
Size and bit depth can also be chosen separately (``size=512,bits=native``). Bit-depth
reduction rescales by the *nominal* range (``2**bits - 1``), never by an image's own
min/max, so the same tissue maps to the same grey level in every image; a DICOM's window
(``meta["voi"]``, :mod:`medbench.datasets.voi`) is rescaled with the pixels.

A prepared image may hold at most :func:`~medbench.datasets.limits.max_pixels` pixels
(``MEDBENCH_MAX_PIXELS``): ``--size 100000`` is refused before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from medbench.datasets.limits import ENV as MAX_PIXELS_ENV
from medbench.datasets.limits import max_pixels
from medbench.datasets.voi import rescaled
from medbench.errors import MedbenchError
from medbench.image import Image, dtype_for, peak_value


@dataclass(frozen=True)
class Protocol:
    """Target size (square side, None = native) and bit depth (None = native)."""

    size: int | None = None
    bit_depth: int | None = None

    @property
    def name(self) -> str:
        if self == PAPER:
            return "paper"
        if self == NATIVE:
            return "native"
        size = "native" if self.size is None else str(self.size)
        bits = "native" if self.bit_depth is None else str(self.bit_depth)
        return f"size={size},bits={bits}"

    def apply(self, image: Image) -> Image:
        pixels, bits = image.pixels, image.bit_depth
        self.check_size()
        if self.size is not None and pixels.shape != (self.size, self.size):
            pixels = resize(pixels, bits, self.size, self.size)
        meta = dict(image.meta, protocol=self.name)
        if self.bit_depth is not None and self.bit_depth != bits:
            pixels = requantize(pixels, bits, self.bit_depth)
            if meta.get("voi"):  # the source's window follows the pixels to the new scale
                meta["voi"] = rescaled(meta["voi"], peak_value(bits), peak_value(self.bit_depth))
            bits = self.bit_depth
        return Image(pixels, bits, image.image_id, meta)


    def describe(self) -> str:
        """How images are prepared, in one line (the ``preparation`` result column)."""
        size = ("native size" if self.size is None else
                f"Lanczos (anti-aliased, float32) resize to {self.size}x{self.size}")
        bits = ("native bit depth" if self.bit_depth is None else
                f"{self.bit_depth}-bit by the nominal range (2**bits - 1), rounded")
        return f"{size}; {bits}"

    def check_size(self) -> None:
        """Refuse a target size above the pixel budget, before any pixel is allocated.

        Raises
        ------
        MedbenchError
            ``size * size`` is above :func:`~medbench.datasets.limits.max_pixels`.
        """
        if self.size is not None and self.size * self.size > max_pixels():
            raise MedbenchError(
                f"--size {self.size} makes images of {self.size * self.size:,} pixels, above "
                f"the budget of {max_pixels():,}; use a smaller --size, or raise "
                f"{MAX_PIXELS_ENV} if the machine has the memory"
            )


PAPER = Protocol(size=256, bit_depth=8)
NATIVE = Protocol()


def resize(pixels: np.ndarray, bit_depth: int, height: int, width: int) -> np.ndarray:
    """Anti-aliased Lanczos resize in float32, rounded back to the same bit depth."""
    src = PILImage.fromarray(pixels.astype(np.float32), mode="F")
    out = np.asarray(src.resize((width, height), PILImage.Resampling.LANCZOS))
    return np.clip(np.rint(out), 0, peak_value(bit_depth)).astype(dtype_for(bit_depth))


def requantize(pixels: np.ndarray, from_bits: int, to_bits: int) -> np.ndarray:
    """Map ``[0, 2**from_bits - 1]`` linearly onto ``[0, 2**to_bits - 1]``, rounding."""
    scale = peak_value(to_bits) / peak_value(from_bits)
    out = np.rint(pixels.astype(np.float64) * scale)
    return np.clip(out, 0, peak_value(to_bits)).astype(dtype_for(to_bits))


def parse_protocol(name: str, size: str | None = None, bits: str | None = None) -> Protocol:
    """The protocol for ``--protocol`` plus optional ``--size`` / ``--bit-depth`` overrides."""
    presets = {"paper": PAPER, "native": NATIVE}
    if name not in presets:
        raise MedbenchError(f"unknown protocol {name!r}; known protocols: native, paper")
    base = presets[name]
    new_size, new_bits = base.size, base.bit_depth
    if size is not None:
        new_size = None if size == "native" else _positive_int(size, "--size")
    if bits is not None:
        new_bits = None if bits == "native" else _positive_int(bits, "--bit-depth")
        if new_bits is not None and not 1 <= new_bits <= 16:
            raise MedbenchError(f"--bit-depth {bits} is outside 1..16; use 8, 12 or native")
    protocol = Protocol(new_size, new_bits)
    protocol.check_size()
    return protocol


def _positive_int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise MedbenchError(f"{flag} {text!r} is not a number; use e.g. 256 or native") from None
    if value < 1:
        raise MedbenchError(f"{flag} must be positive, got {value}")
    return value
