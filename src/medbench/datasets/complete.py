"""Whether an image file holds every byte its structure promises, without decoding it.

``medbench datasets show`` summarises a collection from headers alone; a file cut short
after its header (an interrupted copy) has a perfect header, so it was counted as an
image there while ``run`` could not read it. These checks walk the file's structure
(seeks and a few bytes, or the tail of a JPEG) and raise the reason a run would give:

- PNG (ISO/IEC 15948, 5.3): chunk by chunk, each chunk's data and CRC must lie inside
  the file, up to the ``IEND`` chunk.
- JPEG (ITU-T T.81, B.2): after the start-of-scan marker, an end-of-image marker
  (``FF D9``) must follow; entropy-coded data never holds one (an ``FF`` there is
  followed by ``00`` or a restart marker), so a file cut inside its scan has none.
  Bytes after the end-of-image marker are allowed, as decoders allow them.
- TIFF (TIFF 6.0, section 3): every strip or tile (offset + byte count) must end within
  the file.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from medbench.errors import ImageReadError

#: How much of a JPEG's end is read first to find its end-of-image marker.
JPEG_TAIL = 65536


def check_png_complete(path: Path) -> None:
    """Raise :class:`ImageReadError` unless every chunk of the PNG ``path``, up to
    ``IEND``, lies inside the file."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        position = 8  # after the signature
        while True:
            f.seek(position)
            head = f.read(8)
            if len(head) < 8:
                raise ImageReadError(f"{path}: truncated PNG (ends after {position:,} bytes, "
                                     "before its IEND chunk); re-copy or re-export it")
            length, ctype = struct.unpack(">I4s", head)
            position += 12 + length
            if position > size:
                name = ctype.decode("latin-1", "replace")
                raise ImageReadError(f"{path}: truncated PNG (its {name} chunk needs "
                                     f"{position - size:,} more bytes than the file holds); "
                                     "re-copy or re-export it")
            if ctype == b"IEND":
                return


def check_jpeg_complete(path: Path) -> None:
    """Raise :class:`ImageReadError` unless an end-of-image marker follows the first
    start-of-scan marker of the JPEG ``path``."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        start = _scan_start(f)
        if start is None:
            return  # no scan at all: the header check says what is wrong
        f.seek(max(start, size - JPEG_TAIL))
        if b"\xff\xd9" in f.read():
            return
        f.seek(start)  # bytes after the end marker (allowed) may hide it from the tail
        if b"\xff\xd9" in f.read():
            return
    raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker after its image "
                         "data); re-copy or re-export it")


def _scan_start(f: Any) -> int | None:
    """The offset just after the first start-of-scan segment's header, or None."""
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte == b"\xff":
            byte = f.read(1)
            if byte != b"\xff":
                break
        if not byte:
            return None
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker == 0xD9:
            return None
        raw = f.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            return None
        f.seek(length - 2, 1)
        if marker == 0xDA:
            return f.tell()


def check_tiff_complete(path: Path, tags: Any) -> None:
    """Raise :class:`ImageReadError` unless every strip or tile the TIFF ``tags``
    (Pillow's ``tag_v2``) name ends within the file ``path``."""
    size = Path(path).stat().st_size
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets is None or counts is None:
            continue
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        end = max((int(o) + int(c) for o, c in zip(offsets, counts)), default=0)
        if end > size:
            raise ImageReadError(f"{path}: truncated TIFF (its image data ends at byte "
                                 f"{end:,} but the file holds {size:,} bytes); re-copy or "
                                 "re-export it")
