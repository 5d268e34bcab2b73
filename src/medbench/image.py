"""The :class:`Image` that flows from readers through protocols into codecs.

Pixels are always MONOCHROME2 (higher value = brighter, bone bright), stored as ``uint8``
for bit depths up to 8 and ``uint16`` for 9 to 16 bits. The bit depth is carried
explicitly because a 12-bit radiograph in a ``uint16`` array cannot be told from its dtype.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_BIT_DEPTH = 1
MAX_BIT_DEPTH = 16


def peak_value(bit_depth: int) -> int:
    """Largest value a pixel of ``bit_depth`` bits can hold: ``2**bit_depth - 1``.

    Parameters
    ----------
    bit_depth
        Number of significant bits, 1..16.

    Returns
    -------
    int
        ``2**bit_depth - 1`` (4095 for 12 bits): the PSNR peak and the protocols' scale.

    Raises
    ------
    ValueError
        ``bit_depth`` is outside 1..16.
    """
    check_bit_depth(bit_depth)
    return (1 << bit_depth) - 1


def check_bit_depth(bit_depth: int) -> None:
    """Refuse a bit depth medbench cannot store.

    Parameters
    ----------
    bit_depth
        Number of significant bits.

    Raises
    ------
    ValueError
        ``bit_depth`` is outside ``MIN_BIT_DEPTH..MAX_BIT_DEPTH`` (1..16); the message
        names the value and the range.
    """
    if not MIN_BIT_DEPTH <= int(bit_depth) <= MAX_BIT_DEPTH:
        raise ValueError(
            f"bit depth {bit_depth} is outside the supported range "
            f"{MIN_BIT_DEPTH}..{MAX_BIT_DEPTH}"
        )


def dtype_for(bit_depth: int) -> np.dtype:
    """The storage dtype for a bit depth: uint8 up to 8 bits, uint16 above.

    Parameters
    ----------
    bit_depth
        Number of significant bits, 1..16.

    Returns
    -------
    numpy.dtype
        ``uint8`` for 1..8 bits, ``uint16`` for 9..16 bits.

    Raises
    ------
    ValueError
        ``bit_depth`` is outside 1..16.
    """
    check_bit_depth(bit_depth)
    return np.dtype(np.uint8) if bit_depth <= 8 else np.dtype(np.uint16)


def pixel_sha256(pixels: np.ndarray) -> str:
    """SHA-256 (hex) of a 2-D image's values: the same radiograph gives the same hash
    whatever its file name, format or container.

    The hash covers the shape (``"HxW"``) and the values as little-endian 16-bit words, so
    an 8-bit image and the same values stored in a 16-bit file agree, and a PNG re-saved
    with other compression settings keeps its hash; a resized or requantized image does
    not. Models record the hashes of the images they trained on, so a run can tell when a
    model is scored on one of them (``seen_in_training``).

    Parameters
    ----------
    pixels
        2-D array of unsigned integers (``uint8`` or ``uint16``).

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    if pixels.ndim != 2 or pixels.dtype.kind != "u" or pixels.dtype.itemsize > 2:
        raise ValueError(f"pixel_sha256 needs a 2-D uint8/uint16 array, got "
                         f"{pixels.dtype} of shape {pixels.shape}")
    digest = hashlib.sha256(f"{pixels.shape[0]}x{pixels.shape[1]}\n".encode())
    digest.update(np.ascontiguousarray(pixels, dtype="<u2").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Image:
    """A grayscale radiograph as the harness sees it.

    Parameters
    ----------
    pixels
        2-D array, MONOCHROME2, dtype given by :func:`dtype_for` of ``bit_depth``.
    bit_depth
        Number of significant bits (1..16); every pixel is ``<= 2**bit_depth - 1``.
    image_id
        Identifier unique within its dataset; used in results and file names.
    meta
        Free-form metadata: ``dataset``, ``split``, ``group``, ``body_part``, ``source``...

    Raises
    ------
    ValueError
        The bit depth is outside 1..16, the array is not 2-D, or its dtype is not the one
        :func:`dtype_for` gives for the bit depth.
    """

    pixels: np.ndarray
    bit_depth: int
    image_id: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_bit_depth(self.bit_depth)
        if self.pixels.ndim != 2:
            raise ValueError(
                f"image {self.image_id!r} must be 2-D grayscale, got shape {self.pixels.shape}"
            )
        expected = dtype_for(self.bit_depth)
        if self.pixels.dtype != expected:
            raise ValueError(
                f"image {self.image_id!r} has dtype {self.pixels.dtype} but bit depth "
                f"{self.bit_depth} is stored as {expected}"
            )

    @property
    def height(self) -> int:
        """Number of rows."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Number of columns."""
        return int(self.pixels.shape[1])

    @property
    def peak(self) -> int:
        """Largest storable value, :func:`peak_value` of the bit depth."""
        return peak_value(self.bit_depth)

    def replace(self, **changes: Any) -> Image:
        """A copy with some fields changed (metadata is copied, never shared).

        Parameters
        ----------
        **changes
            New values for ``pixels``, ``bit_depth``, ``image_id`` or ``meta``.

        Returns
        -------
        Image
            The new image, checked like any other.
        """
        values = {
            "pixels": self.pixels,
            "bit_depth": self.bit_depth,
            "image_id": self.image_id,
            "meta": dict(self.meta),
        }
        values.update(changes)
        return Image(**values)
