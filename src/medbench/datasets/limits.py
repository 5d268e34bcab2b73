"""The readers' side of the pixel budget (:mod:`medbench.limits`): a file whose header
declares more pixels than the budget is refused before it is decoded."""

from __future__ import annotations

from medbench.errors import ImageReadError
from medbench.limits import ENV, budget_note, max_pixels

__all__ = ["ENV", "budget_note", "check_image_size", "max_pixels", "memory_message"]


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
