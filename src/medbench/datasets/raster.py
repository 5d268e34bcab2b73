"""PNG, JPEG and TIFF radiographs into MONOCHROME2 pixels with their true bit depth.

Bit depth is read from the file, never guessed from the pixel values:

- PNG: the sample depth of the IHDR chunk, lowered by an ``sBIT`` chunk when present. A
  16-bit PNG cannot say by itself whether it holds 12 or 16 significant bits; without
  ``sBIT`` it is 16. With ``sBIT = s`` the PNG standard (ISO/IEC 15948, 12.12) has the
  samples scaled up to the full sample depth, so the original values are recovered by a
  right shift of ``depth - s`` bits (what :func:`write_png` does in reverse).
  A palette PNG is read through its palette, whose entries are 8-bit, so it is 8-bit
  whatever its index depth (1, 2, 4 or 8); only grey palettes are accepted.
- JPEG: the sample precision of its frame header. 8-bit lossy JPEG is decoded by Pillow;
  12-bit and lossless JPEG (SOF3) by imagecodecs.
- TIFF: BitsPerSample. WhiteIsZero files are inverted to MONOCHROME2.

Every reader checks the size its header declares against the pixel budget
(:mod:`~medbench.datasets.limits`) before decoding.

Colour is refused, not converted: an RGB(A) file whose red, green and blue are equal
(how grey images are often saved, NIH ChestX-ray14 has a few as RGBA) is grey, and one
channel is taken and the alpha dropped; anything else is a colour image and not a
radiograph medbench can measure honestly.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from medbench.datasets.base import Probe
from medbench.datasets.complete import check_jpeg_complete, check_png_complete, check_tiff_complete
from medbench.datasets.limits import check_image_size
from medbench.errors import ImageReadError
from medbench.image import dtype_for

#: A JPEG's chroma may stray this far from neutral (128) and still count as grey:
#: lossy coding of a grey image leaves its chroma at 128 give or take rounding.
JPEG_CHROMA_TOLERANCE = 4

#: The eight bytes every PNG file starts with (ISO/IEC 15948, 5.2).
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_PIL_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, zlib.error, PILImage.DecompressionBombError
)


# -- PNG ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    depth: int  # sample depth: 1, 2, 4, 8 or 16
    colour_type: int  # 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
    sbit: tuple[int, ...] | None

    @property
    def significant_bits(self) -> int:
        """The image's bit depth, shared by :func:`probe_png` and :func:`read_png`.

        Bits per grey sample after ``sBIT``; palette images are 8-bit whatever their index
        depth, since their grey values are the palette's 8-bit entries.
        """
        depth = 8 if self.colour_type == 3 else self.depth
        if self.sbit and self.colour_type != 3 and self.depth >= 8:
            bits = max(self.sbit[:3] if self.colour_type in (2, 6) else self.sbit[:1])
            if 1 <= bits < depth:
                return bits
        return depth


def png_header(path: Path) -> PngHeader:
    """IHDR and sBIT of a PNG file, read chunk by chunk up to the first IDAT."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_MAGIC:
                raise ImageReadError(f"{path}: not a PNG file (bad signature)")
            header: dict[str, Any] = {}
            sbit = None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    raise ImageReadError(f"{path}: truncated PNG (ends before its image data)")
                length, ctype = struct.unpack(">I4s", head)
                if ctype == b"IDAT" or ctype == b"IEND":
                    break
                data = f.read(length)
                f.seek(4, 1)  # CRC
                if len(data) < length:
                    raise ImageReadError(f"{path}: truncated PNG chunk {ctype.decode('latin-1')}")
                if ctype == b"IHDR":
                    w, h, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", data[:13])
                    header = {"width": w, "height": h, "depth": depth, "colour_type": colour}
                elif ctype == b"sBIT":
                    sbit = tuple(data)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except struct.error as exc:
        raise ImageReadError(f"{path}: malformed PNG header ({exc})") from exc
    if not header:
        raise ImageReadError(f"{path}: PNG without an IHDR chunk; the file is damaged")
    return PngHeader(sbit=sbit, **header)


def _check_png_supported(path: Path, header: PngHeader) -> None:
    if header.depth == 16 and header.colour_type != 0:
        kind = {2: "RGB", 4: "grey+alpha", 6: "RGBA"}.get(header.colour_type, "colour")
        raise ImageReadError(
            f"{path}: 16-bit {kind} PNG; Pillow would keep only 8 of its bits, so medbench "
            "refuses it: save it as 16-bit greyscale"
        )


def _checked_png_header(path: Path) -> PngHeader:
    header = png_header(path)
    if header.depth not in (1, 2, 4, 8, 16) or header.colour_type not in (0, 2, 3, 4, 6):
        raise ImageReadError(
            f"{path}: PNG header has bit depth {header.depth} and colour type "
            f"{header.colour_type}, which the PNG standard does not allow; the file is damaged"
        )
    check_image_size(path, header.height, header.width)
    _check_png_supported(path, header)
    return header


def probe_png(path: Path) -> Probe:
    header = _checked_png_header(path)
    check_png_complete(path)  # a run could not read a truncated file: not an image here
    return Probe(header.height, header.width, header.significant_bits)


def read_png(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Grey pixels of a PNG, its bit depth (IHDR + sBIT) and how it was stored."""
    header = _checked_png_header(path)
    try:
        with PILImage.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            arr = np.asarray(im)
    except _PIL_ERRORS as exc:
        raise ImageReadError(f"{path}: unreadable PNG ({exc}); re-export the image") from exc
    if arr.shape[:2] != (header.height, header.width):
        raise ImageReadError(
            f"{path}: decoded to {arr.shape[1]}x{arr.shape[0]} pixels where its header says "
            f"{header.width}x{header.height}; the file is damaged"
        )
    meta: dict[str, Any] = {}
    depth, bits = header.depth, header.significant_bits
    if header.colour_type == 3:
        # The palette's grey values are the pixels (8-bit), not the 1/2/4/8-bit indices.
        arr = _grey_from_rgb(path, arr, "palette PNG", tolerance=0)
        meta["stored_as"] = "palette"
        return np.ascontiguousarray(arr, dtype=np.uint8), bits, meta
    if header.colour_type in (2, 6):
        arr = _grey_from_rgb(path, arr, "PNG", tolerance=0)
        meta["stored_as"] = {2: "RGB", 6: "RGBA"}[header.colour_type]
    elif header.colour_type == 4:
        arr = arr[..., 0]
        meta["stored_as"] = "grey+alpha"
    if depth < 8:
        # Pillow spreads 1/2/4-bit grey over 0..255 (or gives booleans); undo it exactly.
        arr = arr.astype(np.uint8) if arr.dtype == bool else arr // (255 // (2**depth - 1))
        return arr.astype(np.uint8), depth, meta
    if bits < depth:
        arr = arr >> (depth - bits)  # sBIT: samples were scaled up to the sample depth
        meta["sbit"] = bits
    return np.ascontiguousarray(arr).astype(dtype_for(bits), copy=False), bits, meta


def write_png(path: Path, pixels: np.ndarray, bit_depth: int) -> None:
    """Write grey pixels as an 8- or 16-bit PNG that :func:`read_png` reads back exactly.

    Bit depths that PNG cannot store directly are written as the PNG standard says:
    scaled up to the next sample depth by bit replication, with an ``sBIT`` chunk naming
    the true depth. Viewers then show the image at full contrast, and readers that honour
    ``sBIT`` recover the exact values by a right shift.
    """
    depth = 8 if bit_depth <= 8 else 16
    values = pixels.astype(np.uint32)
    shift = depth - bit_depth
    if shift:
        scaled = values << shift
        empty = shift  # low bits still to fill, by replicating the value's top bits
        while empty > 0:
            if empty >= bit_depth:
                scaled |= values << (empty - bit_depth)
                empty -= bit_depth
            else:
                scaled |= values >> (bit_depth - empty)
                empty = 0
        values = scaled
    arr = values.astype(np.uint8 if depth == 8 else np.uint16)
    im = PILImage.fromarray(arr)  # uint8 -> "L", uint16 -> "I;16"
    path = Path(path)
    im.save(path, format="PNG")
    if shift:
        _insert_chunk_after_ihdr(path, b"sBIT", bytes([bit_depth]))


def _insert_chunk_after_ihdr(path: Path, ctype: bytes, data: bytes) -> None:
    raw = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    chunk = struct.pack(">I", len(data)) + ctype + data
    chunk += struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)
    path.write_bytes(raw[:ihdr_end] + chunk + raw[ihdr_end:])


# -- JPEG ----------------------------------------------------------------------------------------
#: Start-of-frame markers (ITU-T T.81, B.1.1.3); the other 0xC4..0xCF are not frames.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: Frames Pillow decodes (8-bit baseline, extended, progressive); imagecodecs the rest.
_PILLOW_SOF = {0xC0, 0xC1, 0xC2}


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    precision: int  # bits per sample: 8 or 12 (lossy), 2..16 (lossless)
    components: int
    marker: int  # the start-of-frame marker: 0xC0 baseline ... 0xC3 lossless

    @property
    def lossless(self) -> bool:
        return self.marker in (0xC3, 0xC7, 0xCB, 0xCF)


def jpeg_header(path: Path) -> JpegHeader:
    """The frame header of a JPEG file (ITU-T T.81 B.2.2), read marker by marker."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                raise ImageReadError(f"{path}: not a JPEG file (no start-of-image marker)")
            while True:
                byte = f.read(1)
                while byte == b"\xff":  # fill bytes before a marker
                    byte = f.read(1)
                    if byte != b"\xff":
                        break
                if not byte:
                    raise ImageReadError(f"{path}: truncated JPEG (ends before its frame header)")
                marker = byte[0]
                if marker == 0x01 or 0xD0 <= marker <= 0xD7:
                    continue  # markers without a length
                if marker in (0xD9, 0xDA):
                    raise ImageReadError(
                        f"{path}: JPEG without a frame header; the file is damaged"
                    )
                raw = f.read(2)
                if len(raw) < 2:
                    raise ImageReadError(f"{path}: truncated JPEG (ends inside a marker)")
                length = struct.unpack(">H", raw)[0]
                if length < 2:
                    raise ImageReadError(f"{path}: malformed JPEG marker length {length}")
                if marker in _SOF_MARKERS:
                    data = f.read(6)
                    if len(data) < 6:
                        raise ImageReadError(f"{path}: truncated JPEG frame header")
                    precision, height, width, components = struct.unpack(">BHHB", data)
                    return JpegHeader(width, height, precision, components, marker)
                f.seek(length - 2, 1)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _checked_jpeg_header(path: Path) -> JpegHeader:
    header = jpeg_header(path)
    if header.components == 4:
        raise ImageReadError(f"{path}: CMYK JPEG is not a radiograph; save it as grey")
    if header.components not in (1, 3) or not 2 <= header.precision <= 16:
        raise ImageReadError(
            f"{path}: JPEG frame header declares {header.components} components of "
            f"{header.precision} bits; the file is damaged or not a greyscale image"
        )
    check_image_size(path, header.height, header.width)
    return header


def probe_jpeg(path: Path) -> Probe:
    header = _checked_jpeg_header(path)
    check_jpeg_complete(path)
    return Probe(header.height, header.width, header.precision)


def read_jpeg(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Grey pixels of a JPEG with the bit depth of its frame header.

    8-bit lossy JPEG: the luma plane as Pillow decodes it, its chroma checked to be
    neutral. 12-bit and lossless JPEG: decoded by imagecodecs.
    """
    header = _checked_jpeg_header(path)
    if header.marker in _PILLOW_SOF and header.precision == 8:
        arr, meta = _read_jpeg_pillow(path)
        bits = 8
    else:
        arr, meta = _read_jpeg_imagecodecs(path, header), {}
        bits = header.precision
        if arr.ndim == 3:
            tolerance = 0 if header.lossless else JPEG_CHROMA_TOLERANCE
            arr, meta["stored_as"] = _grey_from_rgb(path, arr, "JPEG", tolerance), "RGB"
        if header.lossless:
            meta["lossless"] = True
    if arr.shape != (header.height, header.width):
        raise ImageReadError(
            f"{path}: decoded to {arr.shape} pixels where its header says "
            f"{header.width}x{header.height}; the file is damaged"
        )
    if bits < 16 and arr.size and int(arr.max()) >= 1 << bits:
        raise ImageReadError(f"{path}: decoded values exceed its {bits}-bit precision")
    return np.ascontiguousarray(arr).astype(dtype_for(bits), copy=False), bits, meta


def _read_jpeg_pillow(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    meta: dict[str, Any] = {}
    try:
        with PILImage.open(path) as im:
            if im.mode == "CMYK":
                raise ImageReadError(f"{path}: CMYK JPEG is not a radiograph; save it as grey")
            if im.mode == "RGB":
                im.draft("YCbCr", im.size)  # the decoded planes, before colour conversion
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except _PIL_ERRORS as exc:
        raise ImageReadError(f"{path}: unreadable JPEG ({exc}); re-export the image") from exc
    if mode == "YCbCr":
        stray = int(np.abs(arr[..., 1:].astype(np.int16) - 128).max())
        if stray > JPEG_CHROMA_TOLERANCE:
            raise ImageReadError(
                f"{path}: colour JPEG (chroma up to {stray} levels from grey); medbench reads "
                "greyscale radiographs only"
            )
        arr, meta["stored_as"] = arr[..., 0], "YCbCr"
    elif mode == "RGB":
        arr = _grey_from_rgb(path, arr, "JPEG", tolerance=JPEG_CHROMA_TOLERANCE)
        meta["stored_as"] = "RGB"
    elif mode != "L":
        raise ImageReadError(f"{path}: JPEG in mode {mode} is not greyscale")
    return np.asarray(arr, dtype=np.uint8), meta


def _read_jpeg_imagecodecs(path: Path, header: JpegHeader) -> np.ndarray:
    try:
        import imagecodecs
    except ImportError:
        raise ImageReadError(
            f"{path}: {header.precision}-bit {'lossless ' if header.lossless else ''}JPEG "
            "needs the imagecodecs package; install it (pip install imagecodecs)"
        ) from None
    try:
        return np.asarray(imagecodecs.jpeg8_decode(path.read_bytes()))
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except Exception as exc:  # imagecodecs raises its own error class per codec
        raise ImageReadError(
            f"{path}: {header.precision}-bit JPEG cannot be decoded ({exc}); "
            "the file is damaged"
        ) from exc


# -- TIFF --------------------------------------------------------------------------------------
_TIFF_GREY_MODES = {"1": 1, "L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}


def _open_tiff(path: Path) -> PILImage.Image:
    im = PILImage.open(path)
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:
        im.close()
        raise ImageReadError(
            f"{path}: multi-page TIFF ({frames} pages); save each page as its own file"
        )
    sample_format = im.tag_v2.get(339, 1) if hasattr(im, "tag_v2") else 1
    if isinstance(sample_format, tuple):  # one value per sample
        sample_format = sample_format[0] if sample_format else 1
    if int(sample_format) == 3:
        im.close()
        raise ImageReadError(
            f"{path}: floating-point TIFF has no integer bit depth; convert it to 16-bit integer"
        )
    try:
        check_image_size(path, im.height, im.width)
    except ImageReadError:
        im.close()
        raise
    return im


def probe_tiff(path: Path) -> Probe:
    try:
        with _open_tiff(path) as im:
            bits = _TIFF_GREY_MODES.get(im.mode, 8)
            check_tiff_complete(path, im.tag_v2)
            return Probe(im.height, im.width, bits)
    except _PIL_ERRORS as exc:
        raise ImageReadError(f"{path}: unreadable TIFF ({exc}); re-export the image") from exc


def read_tiff(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Grey pixels of a single-page TIFF with the bit depth of its BitsPerSample."""
    meta: dict[str, Any] = {}
    try:
        with _open_tiff(path) as im:
            im.load()
            mode = im.mode
            photometric = int(im.tag_v2.get(262, 1))
            arr = np.asarray(im)
    except _PIL_ERRORS as exc:
        raise ImageReadError(f"{path}: unreadable TIFF ({exc}); re-export the image") from exc
    if mode in ("RGB", "RGBA"):
        arr, bits = _grey_from_rgb(path, arr, "TIFF", tolerance=0), 8
        meta["stored_as"] = mode
    elif mode in _TIFF_GREY_MODES:
        bits = _TIFF_GREY_MODES[mode]
        if mode == "1":
            arr = arr.astype(np.uint8)
        # Pillow already inverts 1- and 8-bit WhiteIsZero (raw modes "1;I", "L;I"); not 16-bit.
        if photometric == 0 and bits == 16:
            arr = (2**16 - 1) - arr.astype(np.uint16)
        if photometric == 0:
            meta["photometric"] = "WhiteIsZero"
    else:
        raise ImageReadError(
            f"{path}: TIFF in mode {mode} is not an 8- or 16-bit greyscale image; "
            "convert it to 16-bit greyscale"
        )
    return np.ascontiguousarray(arr).astype(dtype_for(bits), copy=False), bits, meta


# -- colour ------------------------------------------------------------------------------------
def _grey_from_rgb(path: Path, arr: np.ndarray, fmt: str, tolerance: int) -> np.ndarray:
    """One channel of an RGB(A) array whose R, G and B agree (within ``tolerance``)."""
    rgb = arr[..., :3].astype(np.int16)
    spread = np.maximum(np.abs(rgb[..., 0] - rgb[..., 1]), np.abs(rgb[..., 1] - rgb[..., 2]))
    worst = int(spread.max()) if spread.size else 0
    if worst > tolerance:
        share = float((spread > tolerance).mean())
        raise ImageReadError(
            f"{path}: colour {fmt} ({share:.1%} of pixels differ between red, green and blue "
            f"by up to {worst}); medbench reads greyscale radiographs only"
        )
    if tolerance == 0:
        return np.ascontiguousarray(arr[..., 1])
    # Near-grey lossy data: the rounded mean of the three channels.
    return np.rint(rgb.mean(axis=-1)).astype(arr.dtype)
