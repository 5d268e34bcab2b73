"""HTJ2K: the codestream declares the true bit depth and decodes alike in OpenJPH and OpenJPEG."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.metrics import psnr
from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS
from medbench.codecs.htj2k import set_precision
from medbench.image import Image

imagecodecs = pytest.importorskip("imagecodecs")


def siz_precision(data: bytes) -> int:
    """Bits of component 0 from the SIZ marker segment (Ssiz + 1, unsigned)."""
    assert data[:4] == b"\xff\x4f\xff\x51"
    return (data[42] & 0x7F) + 1


@pytest.mark.parametrize("bit_depth", [1, 6, 8, 10, 12, 15, 16])
def test_codestream_declares_the_true_bit_depth(bit_depth, make_image):
    codec = get_codec("htj2k")
    image = make_image(40, bit_depth)
    for setting in (LOSSLESS, "qstep=0.004"):
        assert siz_precision(codec.encode(image, setting)) == bit_depth


@pytest.mark.parametrize("bit_depth", [8, 10, 12, 16])
def test_lossless_decodes_bit_exact_in_openjph_and_openjpeg(bit_depth, make_image):
    image = make_image((64, 96), bit_depth, seed=bit_depth)
    data = get_codec("htj2k").encode(image, LOSSLESS)
    np.testing.assert_array_equal(imagecodecs.htj2k_decode(data), image.pixels)
    np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(data), image.pixels)


@pytest.mark.parametrize("bit_depth", [10, 12])
def test_lossy_decoders_agree_and_stay_in_range(bit_depth, make_image):
    image = make_image(128, bit_depth, seed=2)
    codec = get_codec("htj2k")
    for setting in codec.settings()[:-1]:
        data = codec.encode(image, setting)
        ojph = imagecodecs.htj2k_decode(data).astype(np.int64)
        openjpeg = imagecodecs.jpeg2k_decode(data).astype(np.int64)
        assert np.abs(ojph - openjpeg).max() <= 1, setting  # float 9/7 rounding only
        assert ojph.max() <= image.peak


def test_qstep_is_relative_to_the_native_range(make_image):
    """The same picture at 10 and 12 bits gives about the same rate and PSNR at one qstep."""
    codec = get_codec("htj2k")
    base = make_image(128, 16, seed=4).pixels
    results = []
    for bits in (10, 12):
        pixels = ((base.astype(np.uint32) + (1 << (15 - bits))) >> (16 - bits)).astype(np.uint16)
        image = Image(pixels, bits, f"b{bits}")
        data = codec.encode(image, "qstep=0.004")
        decoded = codec.decode(data)
        results.append((len(data), psnr(pixels, decoded, data_range=image.peak)))
    (n10, p10), (n12, p12) = results
    assert abs(n12 - n10) / n10 < 0.05 and abs(p12 - p10) < 1.0, results


def test_set_precision_refuses_foreign_streams():
    with pytest.raises(ValueError, match="SOC"):
        set_precision(b"\x89PNG\r\n\x1a\n" + bytes(64), 16, 12)
    rgb = imagecodecs.htj2k_encode(np.zeros((16, 16, 3), np.uint16))
    with pytest.raises(ValueError, match="Csiz=3"):
        set_precision(bytes(rgb), 16, 12)


def test_lossy_overshoot_is_clamped_not_wrapped():
    """A saturated edge rings past 255; the decoder must clamp, not wrap to 0."""
    pixels = np.zeros((64, 64), np.uint8)
    pixels[:, 32:] = 255
    image = Image(pixels, 8, "edge")
    codec = get_codec("htj2k")
    for setting in ("qstep=0.064", "qstep=0.008"):
        decoded = codec.decode(codec.encode(image, setting))
        assert np.abs(decoded.astype(int) - pixels).max() < 64, setting
