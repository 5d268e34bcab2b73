"""JPEG-LS encoding at the true sample precision through CharLS's C API.

``imagecodecs.jpegls_encode`` always declares the storage word as the precision (P = 16
for any ``uint16`` image). JPEG-LS derives its coding parameters from P (MAXVAL, RANGE,
the context thresholds T1..T3 and the escape LIMIT, ITU-T T.87 §C.2.4.1.1): on the
``sample`` tiles, coding as 16-bit costs 5.1 % more bytes lossless at 10 bits, 1.4 % at
12 bits (chest requantized) and 0.2 % at 15 bits, and the file would not say what
DICOM's Bits Stored says. We therefore call the CharLS library that the
imagecodecs wheel bundles (``imagecodecs.libs/libcharls*``) directly with ctypes, setting
``bits_per_sample`` to the image's bit depth. The output is a plain JPEG-LS stream (SOI,
SOF55, SOS, EOI: what DICOM stores), without imagecodecs' SPIFF header; it is decoded by
``imagecodecs.jpegls_decode``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from medbench.codecs._libraries import display_path, loaded_file

log = logging.getLogger(__name__)


class _FrameInfo(ctypes.Structure):
    # charls_frame_info (CharLS 2.x public C API, charls_jpegls_encoder.h)
    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("bits_per_sample", ctypes.c_int32),
        ("component_count", ctypes.c_int32),
    ]


def _candidates() -> list[str]:
    """Where a CharLS shared library may be: the imagecodecs wheel first, then the system."""
    found: list[str] = []
    spec = importlib.util.find_spec("imagecodecs")
    if spec is not None and spec.origin:
        package = Path(spec.origin).resolve().parent
        for folder in (package.parent / "imagecodecs.libs", package / ".dylibs", package):
            if folder.is_dir():
                found += [str(p) for p in sorted(folder.glob("libcharls*"))]
                found += [str(p) for p in sorted(folder.glob("charls*.dll"))]
    system = ctypes.util.find_library("charls")
    if system:
        found.append(system)
    return found


@lru_cache(maxsize=1)
def load_charls() -> ctypes.CDLL | None:
    """The CharLS 2.x library, or ``None`` if none can be loaded here (see :func:`reason`)."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            major, minor, patch = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
            lib.charls_get_version_number(
                ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch)
            )
        except (OSError, AttributeError) as exc:
            log.debug("cannot use CharLS at %s: %s", path, exc)
            continue
        if major.value != 2 or minor.value < 1:  # the encoder C API is 2.1+; 3.x may differ
            log.debug("CharLS %s.%s at %s is not 2.1+", major.value, minor.value, path)
            continue
        _declare(lib)
        return lib
    return None


@lru_cache(maxsize=1)
def describe() -> str | None:
    """``CharLS <version> (<file>)`` of :func:`load_charls`'s library, or None."""
    lib = load_charls()
    if lib is None:
        return None
    major, minor, patch = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
    lib.charls_get_version_number(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    found = loaded_file(lib, "charls_get_version_number")
    where = display_path(found) if found else "file unknown"
    return f"CharLS {major.value}.{minor.value}.{patch.value} ({where})"


def reason() -> str:
    """Why :func:`load_charls` found nothing (for messages)."""
    return (
        "no CharLS 2.x shared library was found (looked in the imagecodecs wheel's "
        "imagecodecs.libs and the system); pip install --force-reinstall imagecodecs from "
        "PyPI, or install libcharls (apt install libcharls2)"
    )


def _declare(lib: ctypes.CDLL) -> None:
    vp, errc = ctypes.c_void_p, ctypes.c_int32
    lib.charls_jpegls_encoder_create.restype = vp
    lib.charls_jpegls_encoder_create.argtypes = []
    lib.charls_jpegls_encoder_destroy.restype = None
    lib.charls_jpegls_encoder_destroy.argtypes = [vp]
    signatures = {
        "charls_jpegls_encoder_set_frame_info": [vp, ctypes.POINTER(_FrameInfo)],
        "charls_jpegls_encoder_set_near_lossless": [vp, ctypes.c_int32],
        "charls_jpegls_encoder_get_estimated_destination_size": [
            vp,
            ctypes.POINTER(ctypes.c_size_t),
        ],
        "charls_jpegls_encoder_set_destination_buffer": [vp, vp, ctypes.c_size_t],
        "charls_jpegls_encoder_encode_from_buffer": [vp, vp, ctypes.c_size_t, ctypes.c_uint32],
        "charls_jpegls_encoder_get_bytes_written": [vp, ctypes.POINTER(ctypes.c_size_t)],
    }
    for name, argtypes in signatures.items():
        func = getattr(lib, name)
        func.restype, func.argtypes = errc, argtypes
    lib.charls_get_error_message.restype = ctypes.c_char_p
    lib.charls_get_error_message.argtypes = [errc]


def encode(pixels: np.ndarray, bit_depth: int, near: int) -> bytes:
    """A JPEG-LS stream of a 2-D ``uint8``/``uint16`` array declared as ``bit_depth`` bits.

    ``near`` is the NEAR parameter: 0 is lossless, ``n`` bounds every pixel's absolute
    error by ``n``. Every pixel must be ``< 2**bit_depth`` (CharLS rejects larger ones).
    """
    lib = load_charls()
    if lib is None:
        raise RuntimeError(reason())
    pixels = np.ascontiguousarray(pixels)
    encoder = lib.charls_jpegls_encoder_create()
    if not encoder:
        raise MemoryError("charls_jpegls_encoder_create returned NULL")

    def call(name: str, *args) -> None:
        err = getattr(lib, name)(encoder, *args)
        if err:
            message = lib.charls_get_error_message(err).decode("utf-8", "replace")
            raise RuntimeError(f"CharLS {name} failed: {message} (error {err})")

    try:
        info = _FrameInfo(pixels.shape[1], pixels.shape[0], bit_depth, 1)
        call("charls_jpegls_encoder_set_frame_info", ctypes.byref(info))
        call("charls_jpegls_encoder_set_near_lossless", near)
        size = ctypes.c_size_t()
        call("charls_jpegls_encoder_get_estimated_destination_size", ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        call("charls_jpegls_encoder_set_destination_buffer", buffer, size.value)
        call(
            "charls_jpegls_encoder_encode_from_buffer",
            pixels.ctypes.data,
            pixels.nbytes,
            pixels.strides[0],
        )
        written = ctypes.c_size_t()
        call("charls_jpegls_encoder_get_bytes_written", ctypes.byref(written))
        return buffer.raw[: written.value]
    finally:
        lib.charls_jpegls_encoder_destroy(encoder)
