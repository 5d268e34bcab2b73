"""The pixel budget of decoding: a stream's header is checked before anything is allocated.

A hostile or corrupt header can declare any size (65535 × 65535 is 4.3 G pixels, 8 GiB
at 16 bits). Decoders read the declared size first and refuse it above the budget,
``2**28`` pixels (16384 × 16384) unless the environment variable ``MEDBENCH_MAX_PIXELS``
says otherwise (the dataset readers honour the same variable).
"""

from __future__ import annotations

import os

from medbench.errors import MedbenchError

#: Default largest image (pixels) a decoder allocates: 16384 x 16384.
MAX_PIXELS = 2**28
ENV = "MEDBENCH_MAX_PIXELS"


class DeclaredSizeError(MedbenchError):
    """A stream whose header declares an image too large (or empty) to decode."""


def max_pixels() -> int:
    """The pixel budget: ``MEDBENCH_MAX_PIXELS`` when set to a positive integer."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise MedbenchError(
            f"{ENV}={text!r} is not an integer; set it to a pixel count such as {MAX_PIXELS}"
        ) from None
    if value < 1:
        raise MedbenchError(f"{ENV}={text!r} must be a positive pixel count")
    return value


def check_declared_size(what: str, height: int, width: int) -> None:
    """Raise :class:`DeclaredSizeError` unless ``height x width`` is within the budget.

    Parameters
    ----------
    what
        The stream's kind, for the message (e.g. ``"PNG stream"``).
    height, width
        The size its header declares.
    """
    if height < 1 or width < 1:
        raise DeclaredSizeError(f"{what} declares an empty {height}x{width} image; "
                                f"it is corrupt")
    budget = max_pixels()
    if height * width > budget:
        raise DeclaredSizeError(
            f"{what} declares a {height}x{width} image ({height * width} pixels), above "
            f"the {budget}-pixel budget; it is corrupt, or set {ENV} to decode it"
        )
