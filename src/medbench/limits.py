"""The pixel budget: the largest image medbench will decode, prepare or allocate.

A hostile or damaged header can declare any size (a 20-byte stream may claim 65535²
pixels: 8 GiB at 16 bits), and ``--size`` can ask for any; readers, decoders and
protocols check the size against this one budget *before* anything is allocated. The
default, 2**28 pixels (16384², 512 MiB at 16 bits), is far above any radiograph;
``MEDBENCH_MAX_PIXELS`` raises (or lowers) it.
"""

from __future__ import annotations

import os

from medbench.errors import MedbenchError

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
    """How the budget is set, for messages: ``the budget of N pixels (raise it with ...)``."""
    return f"the budget of {max_pixels():,} pixels (raise it with {ENV})"
