"""Whole decoded images kept for reader studies (``medbench run --keep-pixels``).

A reader study (:mod:`medbench.study`) shows radiologists the very pixels a run scored, at
native size. Under ``--keep-pixels`` every ``target:`` cell (``run --target ratio=10,20,30``)
that decoded keeps its whole decoded image, and each image its original as the codecs
received it. They travel with the row to the process that writes the store
(:attr:`~medbench.benchmark.rows.ResultRow.kept`), which writes them here before the row
is committed, so any executor keeps them and ``--resume`` finds them with their rows.

Files are **content-addressed**: ``OUT/pixels/<aa>/<sha256>.png``, where the SHA-256 is
that of the array (its dtype, shape and raw bytes: :func:`digest`). An image that decodes
identically under two cells (a lossless decode, a codec at two targets it meets with one
knob) is one file; a file is never rewritten, and a copied or damaged file is caught on
reading (:func:`read`: the pixels must hash to the name). PNG because it is lossless,
standard (any viewer opens it) and checksummed per chunk, so a truncated file fails to
decode rather than giving wrong pixels. Values are stored as they are (8-bit images in
8-bit PNGs, deeper ones in 16-bit PNGs, *not* scaled to the full 16-bit range: a 12-bit
image looks dark in a plain viewer); the store's ``kept_pixels`` table gives each file's
bit depth.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from medbench.errors import MedbenchError

#: Folder of a results folder that holds the kept images.
PIXELS_DIR = "pixels"
#: zlib level of the PNGs: 1 costs ~10 % more disk than 6 on 12-bit radiographs and
#: writes several times faster, and the writer is the run's one process that stores rows.
PNG_LEVEL = 1


class KeptPixelsError(MedbenchError):
    """A kept image is missing, damaged or not the one the store names."""


def digest(pixels: np.ndarray) -> str:
    """SHA-256 of a 2-D array's dtype, shape and bytes (little-endian): its file name."""
    array = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    head = f"{array.dtype.str}:{array.shape[0]}x{array.shape[1]}:".encode()
    return hashlib.sha256(head + array.tobytes()).hexdigest()


def relative_path(sha256: str) -> str:
    """Where the image with this digest lies inside a results folder."""
    return f"{PIXELS_DIR}/{sha256[:2]}/{sha256}.png"


def write(results: Path, pixels: np.ndarray) -> tuple[str, str]:
    """Store ``pixels`` (uint8 or uint16, 2-D) under ``results``; returns (sha256, path
    relative to ``results``). An existing file of that digest is kept as it is."""
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"kept pixels must be a 2-D uint8/uint16 array, got "
                         f"{pixels.dtype} of shape {pixels.shape}")
    sha = digest(pixels)
    rel = relative_path(sha)
    path = Path(results) / rel
    if path.is_file():
        return sha, rel
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    array = np.ascontiguousarray(pixels)
    if array.dtype == np.uint16:
        picture = PILImage.frombuffer("I;16", array.shape[::-1], array.astype("<u2").tobytes(),
                                      "raw", "I;16", 0, 1)
    else:
        picture = PILImage.fromarray(array, mode="L")
    picture.save(temporary, format="PNG", compress_level=PNG_LEVEL)
    os.replace(temporary, path)  # whole or absent: a crash never leaves half a file
    return sha, rel


def read(results: Path, rel: str, sha256: str, dtype: str, height: int,
         width: int) -> np.ndarray:
    """The kept image at ``results/rel``; checked against its shape and digest.

    Raises
    ------
    KeptPixelsError
        The file is missing, does not decode, or holds other pixels than the store says.
    """
    path = Path(results) / rel
    # A finished cell is never coded again on --resume, so the fix is a backup or a new run.
    fix = (f"restore {Path(results) / PIXELS_DIR}/ from a copy made with the run, or run "
           f"again with --keep-pixels into a new --out")
    if not path.is_file():
        raise KeptPixelsError(f"the kept image {path} is missing; {fix}")
    try:
        with PILImage.open(path) as picture:
            if picture.size != (width, height):  # before decoding a file that may be huge
                raise KeptPixelsError(f"the kept image {path} is {picture.size[0]}x"
                                      f"{picture.size[1]}, not the {width}x{height} the "
                                      f"store names; {fix}")
            picture.load()
            if picture.mode in ("I;16", "I;16B", "I"):
                array = np.asarray(picture, dtype=np.int64)
            else:
                array = np.asarray(picture.convert("L"))
    except (OSError, ValueError, SyntaxError, zlib.error,
            PILImage.DecompressionBombError) as exc:
        raise KeptPixelsError(f"the kept image {path} does not decode ({exc}); {fix}") from None
    array = array.astype(np.dtype(dtype))
    if array.shape != (height, width) or digest(array) != sha256:
        raise KeptPixelsError(f"the kept image {path} is not the one the store names "
                              f"(other pixels or shape); {fix}")
    return array
