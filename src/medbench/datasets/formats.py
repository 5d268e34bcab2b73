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

A DICOM file normally has ``DICM`` at byte 128, after its preamble; one written without
the preamble starts with its first element's tag, and is sniffed as DICOM when that tag
is one of the groups every image holds first (the DICOM reader then accepts it only when
it is a complete image dataset).

:func:`read_image` and :func:`probe_image` are where a file meets medbench: whatever a
reader or its library raises, the caller gets an :class:`~medbench.errors.ImageReadError`
naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medbench.datasets import raster
from medbench.datasets.base import Probe
from medbench.datasets.dicom import probe_dicom, read_dicom
from medbench.datasets.limits import memory_message
from medbench.errors import ImageReadError, MedbenchError, is_library_failure

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

#: Groups a DICOM data set without preamble can start with (little-endian tag bytes): file
#: meta (0002), identification (0008), patient (0010), acquisition (0018), relationship
#: (0020), image pixel (0028).
_DICOM_FIRST_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x10\x00", b"\x18\x00", b"\x20\x00",
                       b"\x28\x00")


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
        head = _head(path)
    except OSError:
        return None
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> str | None:
    """The format told by a file's first 132 bytes (see :func:`sniff`)."""
    # DICM first: a DICOM's preamble may itself be a TIFF header (dual-format files).
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(raster.PNG_MAGIC):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if _looks_like_dicom_dataset(head):
        return "dicom"
    return None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(132)


def _looks_like_dicom_dataset(head: bytes) -> bool:
    """A data set without preamble: a known first group, then an explicit VR or a length."""
    if len(head) < 8 or head[:2] not in _DICOM_FIRST_GROUPS:
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        return True  # explicit VR little endian
    length = int.from_bytes(head[4:8], "little")  # implicit VR: a plausible element length
    return length < 1 << 16


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
    pixels, bit_depth, meta = _guarded(path, kind, READERS[kind])
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
    kind = _checked_kind(path)
    return _guarded(path, kind, PROBERS[kind])


def _guarded(path: Path, kind: str, reader: Callable[[Path], Any]) -> Any:
    """``reader(path)``, with whatever its library raises turned into an ImageReadError."""
    try:
        return reader(path)
    except MedbenchError:
        raise
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from exc
    except MemoryError as exc:
        raise ImageReadError(memory_message(path)) from exc
    except BaseException as exc:  # one odd file must not stop a listing or a run
        if not is_library_failure(exc):
            raise
        raise ImageReadError(
            f"{path}: {kind.upper()} file cannot be read ({type(exc).__name__}: {exc}); "
            "the file is damaged: remove or replace it"
        ) from exc


def _checked_kind(path: Path) -> str:
    try:
        size = path.stat().st_size
        head = _head(path) if size else b""
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be opened ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError(f"{path}: zero-byte file; re-copy it or remove it")
    kind = sniff_bytes(head)
    if kind is None:
        raise ImageReadError(
            f"{path}: not a {FORMAT_NAMES} file (unrecognised first bytes); "
            "remove it or replace it with the original image"
        )
    return kind
