"""JPEG XL: exact lossless at every depth and the effect of declaring the true bit depth."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.metrics import psnr
from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS

imagecodecs = pytest.importorskip("imagecodecs")


@pytest.mark.parametrize("bit_depth", [1, 6, 8, 9, 10, 12, 13, 16])
def test_lossless_is_exact_at_any_depth(bit_depth, make_image):
    codec = get_codec("jpegxl")
    image = make_image((36, 52), bit_depth, seed=bit_depth)
    decoded = codec.decode(codec.encode(image, LOSSLESS))
    assert decoded.dtype == image.pixels.dtype
    np.testing.assert_array_equal(decoded, image.pixels)


def test_declaring_twelve_bits_codes_finer_than_the_16_bit_word(make_image):
    """At one distance, the encoder sees a 12-bit image declared as 16-bit as very dark."""
    image = make_image(128, 12, seed=7)
    codec = get_codec("jpegxl")
    ours = codec.encode(image, "distance=1")
    as_16_bit = imagecodecs.jpegxl_encode(image.pixels, distance=1.0, effort=7)
    decoded_ours = codec.decode(ours)
    decoded_16 = imagecodecs.jpegxl_decode(as_16_bit)
    # the 16-bit declaration throws detail away: under half the bytes, lower PSNR
    assert len(as_16_bit) < 0.5 * len(ours)
    assert psnr(image.pixels, decoded_ours, data_range=image.peak) > 1 + psnr(
        image.pixels, decoded_16, data_range=image.peak
    )
    assert decoded_ours.max() <= image.peak


def test_lossy_decodes_on_the_native_scale(make_image):
    image = make_image(96, 10, seed=8)
    codec = get_codec("jpegxl")
    decoded = codec.decode(codec.encode(image, "distance=0.5"))
    assert decoded.dtype == np.uint16 and decoded.max() <= image.peak
    assert abs(float(decoded.mean()) - float(image.pixels.mean())) < 0.01 * image.peak
