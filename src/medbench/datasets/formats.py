"""Which format an image file is, and the reader for it: the one format dispatcher.

The format is told by the file's first bytes (its magic number), not by its name, so a
``.png`` that is really a JPEG still reads and a text file named ``.png`` is refused with
the reason. Every reader returns ``(pixels, bit_depth, meta)``: a 2-D MONOCHROME2 array
stored as :func:`~medbench.image.dtype_for` of its bit depth, the true bit depth, and a
small JSON-safe metadata dict.

This module imports the readers (:mod:`~medbench.datasets.raster`,
:mod:`~medbench.datasets.dicom`); the readers never import it. Raw formats without a
header or magic number (the JSRT ``.IMG``) cannot be sniffed: the dataset that holds
them picks their reader by name (:meth:`FileTreeDataset.kind_of
<medbench.datasets.tree.FileTreeDataset.kind_of>`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medbench.datasets import raster
from medbench.datasets.base import Probe
from medbench.datasets.dicom import probe_dicom, read_dicom
from medbench.errors import ImageReadError

#: File name suffixes listed as images (lower case), and the format each names.
IMAGE_SUFFIXES = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".dic": "dicom",
}
FORMAT_NAMES = "PNG, JPEG, TIFF or DICOM"

Reader = Callable[[Path], tuple[np.ndarray, int, dict[str, Any]]]

#: The reader and the header prober of each sniffable format.
READERS: dict[str, Reader] = {
    "png": raster.read_png,
    "jpeg": raster.read_jpeg,
    "tiff": raster.read_tiff,
    "dicom": read_dicom,
}
PROBERS: dict[str, Callable[[Path], Probe]] = {
    "png": raster.probe_png,
    "jpeg": raster.probe_jpeg,
    "tiff": raster.probe_tiff,
    "dicom": probe_dicom,
}


def sniff(path: Path) -> str | None:
    """The format of a file from its first bytes.

    Parameters
    ----------
    path
        The file to look at (only its first 132 bytes are read).

    Returns
    -------
    str or None
        ``"png"``, ``"jpeg"``, ``"tiff"`` or ``"dicom"``; None when the bytes match none of
        them or the file cannot be opened.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return None
    if head.startswith(raster.PNG_MAGIC):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[128:132] == b"DICM":
        return "dicom"
    return None


def kind_by_name(path: Path) -> str | None:
    """The format a file's name announces (None for names that are not images).

    Files without a suffix are sniffed: DICOM files are often stored without one.
    """
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return IMAGE_SUFFIXES[suffix]
    if suffix == "" and path.stat().st_size > 0:
        return "dicom" if sniff(path) == "dicom" else None
    return None


def read_image(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Read a PNG, JPEG, TIFF or DICOM file into MONOCHROME2 pixels and its bit depth.

    Parameters
    ----------
    path
        The image file; its format is sniffed from its first bytes.

    Returns
    -------
    pixels : numpy.ndarray
        2-D MONOCHROME2 array, ``uint8`` up to 8 bits, ``uint16`` above.
    bit_depth : int
        The true bit depth, from the file's header.
    meta : dict
        ``format`` (the sniffed format) and what the reader found in the file.

    Raises
    ------
    ImageReadError
        The file is missing, empty, of no known format, or its reader refuses it.
    """
    kind = _checked_kind(path)
    pixels, bit_depth, meta = READERS[kind](path)
    return pixels, bit_depth, {"format": kind, **meta}


def probe_image(path: Path) -> Probe:
    """Size and bit depth of a PNG, JPEG, TIFF or DICOM file from its header only.

    Parameters
    ----------
    path
        The image file; its format is sniffed from its first bytes.

    Returns
    -------
    Probe
        Height, width and bit depth, as :func:`read_image` would give them.

    Raises
    ------
    ImageReadError
        As :func:`read_image`, for what the header shows.
    """
    return PROBERS[_checked_kind(path)](path)


def _checked_kind(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be opened ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError(f"{path}: zero-byte file; re-copy it or remove it")
    kind = sniff(path)
    if kind is None:
        raise ImageReadError(
            f"{path}: not a {FORMAT_NAMES} file (unrecognised first bytes); "
            "remove it or replace it with the original image"
        )
    return kind
