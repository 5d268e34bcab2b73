"""Declared sizes read from classical stream headers, and the pixel budget they must fit."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image as PILImage

from medbench.codecs import CodecContext, codec_names, get_codec
from medbench.codecs import _headers as headers
from medbench.codecs.limits import MAX_PIXELS, DeclaredSizeError, max_pixels
from medbench.errors import MedbenchError
from medbench.image import Image

imagecodecs = pytest.importorskip("imagecodecs")
PIXELS = (np.arange(24 * 40).reshape(24, 40) % 200 + 20).astype(np.uint8)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(PIXELS).save(buf, format="JPEG")
    return buf.getvalue()


STREAMS = {
    "jpeg": (_jpeg, headers.jpeg_size),
    "jpegls": (lambda: imagecodecs.jpegls_encode(PIXELS), headers.jpeg_size),
    "j2k": (lambda: imagecodecs.jpeg2k_encode(PIXELS, codecformat="j2k"), headers.j2k_size),
    "jp2": (lambda: imagecodecs.jpeg2k_encode(PIXELS, codecformat="jp2"), headers.j2k_size),
    "png": (lambda: imagecodecs.png_encode(PIXELS), headers.png_size),
    "webp": (lambda: imagecodecs.webp_encode(np.dstack([PIXELS] * 3), level=50),
             headers.webp_size),
    "webp-lossless": (lambda: imagecodecs.webp_encode(np.dstack([PIXELS] * 3), lossless=True),
                      headers.webp_size),
    "avif": (lambda: imagecodecs.avif_encode(PIXELS, level=50), headers.avif_size),
    "jpegxl": (lambda: imagecodecs.jpegxl_encode(PIXELS, usecontainer=False),
               headers.jpegxl_size),
}


def test_heif_size_is_the_coded_picture_libheif_allocates():
    """x265 codes at least 64x64 (even sides); HEIF's ``clap`` box crops it back, so the
    size checked against the budget is the coded one, never smaller than the image."""
    codec = get_codec("hevc")
    if codec.unavailable_reason():
        pytest.skip(codec.unavailable_reason())
    assert headers.heif_size(codec.encode(Image(PIXELS, 8, "heic"), "qp=30")) == (64, 64)
    tall = np.zeros((130, 71), np.uint8)
    assert headers.heif_size(codec.encode(Image(tall, 8, "heic"), "qp=30")) == (130, 72)


@pytest.mark.parametrize("kind", STREAMS)
def test_declared_size_is_read_as_height_width(kind):
    encode, size_of = STREAMS[kind]
    try:
        data = bytes(encode())
    except Exception as exc:  # a build without this format
        pytest.skip(f"imagecodecs cannot write {kind} here: {exc}")
    assert size_of(data) == (24, 40)
    assert size_of(data[:3]) is None and size_of(b"") is None


def test_jpegxl_size_header_of_large_and_odd_sizes():
    for shape in [(300, 1000), (1000, 1200), (17, 3), (256, 256)]:
        data = imagecodecs.jpegxl_encode(np.zeros(shape, np.uint8), usecontainer=False)
        assert headers.jpegxl_size(bytes(data)) == shape


@pytest.mark.parametrize("kind,offset,fmt", [("png", 16, ">II"), ("j2k", 8, ">II")])
def test_a_header_declaring_65535_square_is_refused(kind, offset, fmt):
    data = bytearray(STREAMS[kind][0]())
    struct.pack_into(fmt, data, offset, 65535, 65535)
    with pytest.raises(DeclaredSizeError, match="65535x65535 image"):
        headers.check_stream(f"{kind} stream", bytes(data), STREAMS[kind][1])


def test_a_jpeg_sof_declaring_65535_square_is_refused():
    data = bytearray(_jpeg())
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, 65535, 65535)
    with pytest.raises(DeclaredSizeError, match="65535x65535"):
        get_codec("jpeg").decode(bytes(data))


CLASSICAL = [n for n in codec_names() if get_codec(n).kind == "classical"]


@pytest.mark.parametrize("name", CLASSICAL)
def test_every_classical_decoder_checks_the_budget_first(name, monkeypatch, make_image):
    codec = get_codec(name, CodecContext())
    if codec.unavailable_reason():
        pytest.skip(codec.unavailable_reason())
    bits = 8 if 8 in codec.bit_depths else min(codec.bit_depths)
    image: Image = make_image(64, bits)  # hevc: x265 codes at least 64x64
    data = codec.encode(image, codec.settings()[-1])
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "4095")
    with pytest.raises(DeclaredSizeError, match="64x64 image .*4095-pixel budget"):
        codec.decode(data)
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "4096")
    assert codec.decode(data).shape == (64, 64)


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("MEDBENCH_MAX_PIXELS", raising=False)
    assert max_pixels() == MAX_PIXELS == 2**28
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "5000")
    assert max_pixels() == 5000
    for bad in ("lots", "0", "-3"):
        monkeypatch.setenv("MEDBENCH_MAX_PIXELS", bad)
        with pytest.raises(MedbenchError, match="MEDBENCH_MAX_PIXELS"):
            max_pixels()


def test_results_that_are_not_grey_images_are_refused():
    with pytest.raises(headers.CorruptStream, match="uint32"):
        headers.check_pixels("HTJ2K stream", np.zeros((4, 4), np.uint32))
    with pytest.raises(headers.CorruptStream, match=r"\(4, 4, 3\)"):
        headers.check_pixels("PNG stream", np.zeros((4, 4, 3), np.uint8))


def test_jpegls_without_end_marker_is_refused_before_charls():
    codec = get_codec("jpegls")
    if codec.unavailable_reason():
        pytest.skip(codec.unavailable_reason())
    data = bytes(imagecodecs.jpegls_encode(PIXELS))
    with pytest.raises(headers.CorruptStream, match="FFD9"):
        codec.decode(data[:40])
