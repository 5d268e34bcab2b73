"""Files on disk: which format a file is, reading it into MONOCHROME2 pixels, hashing it.

Every reader returns ``(pixels, bit_depth, meta)``: a 2-D MONOCHROME2 array stored as
:func:`~medbench.image.dtype_for` of its bit depth, the true bit depth, and a small
JSON-safe metadata dict. The format is told by the file's first bytes (its magic
number), not by its name, so a ``.png`` that is really a JPEG still reads and a text file
named ``.png`` is refused with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import ImageReadError

log = logging.getLogger(__name__)

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

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Probe:
    """What a file's header says, without decoding its pixels."""

    height: int
    width: int
    bit_depth: int


def sniff(path: Path) -> str | None:
    """The format of ``path`` from its first bytes: png, jpeg, tiff, dicom, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return None
    if head.startswith(PNG_MAGIC):
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
    """Read a PNG, JPEG, TIFF or DICOM file into MONOCHROME2 pixels and its bit depth."""
    from medbench.datasets import raster
    from medbench.datasets.dicom import read_dicom

    kind = _checked_kind(path)
    reader = {
        "png": raster.read_png,
        "jpeg": raster.read_jpeg,
        "tiff": raster.read_tiff,
        "dicom": read_dicom,
    }[kind]
    pixels, bit_depth, meta = reader(path)
    return pixels, bit_depth, {"format": kind, **meta}


def probe_image(path: Path) -> Probe:
    """Size and bit depth of a PNG, JPEG, TIFF or DICOM file from its header only."""
    from medbench.datasets import raster
    from medbench.datasets.dicom import probe_dicom

    kind = _checked_kind(path)
    prober = {
        "png": raster.probe_png,
        "jpeg": raster.probe_jpeg,
        "tiff": raster.probe_tiff,
        "dicom": probe_dicom,
    }[kind]
    return prober(path)


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


# -- hashing ------------------------------------------------------------------------------
def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FileHasher:
    """Content hashes of files, remembered by (path, size, mtime) so each is read once.

    A manifest written by an earlier run can seed it (:meth:`remember`), so a second run
    does not re-read unchanged files just to hash them.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, int, str]] = {}

    @staticmethod
    def stamp(path: Path) -> tuple[int, int]:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns

    def remember(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        self._known[str(path)] = (int(size), int(mtime_ns), digest)

    def known(self, path: str) -> tuple[int, int, str] | None:
        return self._known.get(str(path))

    def hash(self, path: Path) -> str:
        size, mtime_ns = self.stamp(path)
        hit = self._known.get(str(path))
        if hit is not None and hit[:2] == (size, mtime_ns):
            return hit[2]
        digest = file_sha256(path)
        self._known[str(path)] = (size, mtime_ns, digest)
        return digest


# -- walking and naming ---------------------------------------------------------------------
def walk_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted; hidden folders (``.git``...) are not entered."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                found.append(path)
    return found


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(*parts: str) -> str:
    """An image id usable as a file name: parts joined by ``_``, odd characters as ``-``."""
    text = "_".join(p for p in parts if p)
    return _UNSAFE.sub("-", text).strip("-") or "image"
