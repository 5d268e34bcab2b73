"""The decoders' side of the pixel budget (:mod:`medbench.limits`): a stream's header is
read and its declared size refused above the budget before anything is allocated."""

from __future__ import annotations

from medbench.errors import MedbenchError
from medbench.limits import DEFAULT_MAX_PIXELS as MAX_PIXELS
from medbench.limits import ENV, max_pixels

__all__ = ["ENV", "MAX_PIXELS", "DeclaredSizeError", "check_declared_size", "max_pixels"]


class DeclaredSizeError(MedbenchError):
    """A stream whose header declares an image too large (or empty) to decode."""


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
