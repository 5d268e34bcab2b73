"""The pixel budget: the largest image medbench will decode or prepare.

A hostile or damaged header can declare any size (a 20-byte PNG may claim 100000²
pixels), and ``--size`` can ask for any; both are checked against one budget *before*
anything is allocated. The default, 2**28 pixels (16384², 512 MiB at 16 bits), is far
above any radiograph; ``MEDBENCH_MAX_PIXELS`` raises (or lowers) it.
"""

from __future__ import annotations

import os

from medbench.errors import ImageReadError, MedbenchError

#: Environment variable that sets the pixel budget.
ENV = "MEDBENCH_MAX_PIXELS"
#: Pixel budget when the environment sets none.
DEFAULT_MAX_PIXELS = 2**28


def max_pixels() -> int:
    """The pixel budget: ``$MEDBENCH_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`.

    Raises
    ------
    MedbenchError
        The variable is set to something other than a positive whole number.
    """
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise MedbenchError(
            f"{ENV}={text!r} is not a whole number of pixels; set it to e.g. {DEFAULT_MAX_PIXELS}"
        ) from None
    if value < 1:
        raise MedbenchError(f"{ENV}={value} must be positive; set it to e.g. {DEFAULT_MAX_PIXELS}")
    return value


def budget_note() -> str:
    """How the budget is set, for messages: ``the budget of N pixels (MEDBENCH_MAX_PIXELS)``."""
    return f"the budget of {max_pixels():,} pixels (raise it with {ENV})"


def check_image_size(path: object, height: int, width: int, frames: int = 1) -> None:
    """Refuse a file whose header declares more pixels than the budget, before decoding it.

    Parameters
    ----------
    path
        The file, named in the message.
    height, width, frames
        What its header declares.

    Raises
    ------
    ImageReadError
        A dimension is not positive, or ``height * width * frames`` is above the budget.
    """
    if height < 1 or width < 1 or frames < 1:
        raise ImageReadError(
            f"{path}: header declares a {height}x{width} image"
            + (f" of {frames} frames" if frames != 1 else "")
            + "; the file is damaged: remove or replace it"
        )
    pixels = height * width * frames
    if pixels > max_pixels():
        raise ImageReadError(
            f"{path}: header declares {height}x{width}"
            + (f"x{frames} frames" if frames != 1 else "")
            + f" = {pixels:,} pixels, above {budget_note()}; it was not decoded"
        )


def memory_message(path: object) -> str:
    """The message for a file whose decoding ran out of memory."""
    return (
        f"{path}: ran out of memory while decoding it (images are limited to "
        f"{budget_note()}); free memory or remove the file"
    )
