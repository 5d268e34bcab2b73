"""WebP: 8-bit only, gray in and gray out."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.metrics import psnr
from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS
from medbench.errors import UnsupportedInput


@pytest.mark.parametrize("bit_depth", [7, 10, 12, 16])
def test_refuses_anything_but_8_bits(bit_depth, make_image):
    with pytest.raises(UnsupportedInput, match=f"webp stores only 8-bit.*{bit_depth}-bit"):
        get_codec("webp").encode(make_image(16, bit_depth), LOSSLESS)


def test_lossless_is_exact_and_lossy_is_gray(make_image):
    codec = get_codec("webp")
    image = make_image((40, 64), 8)
    np.testing.assert_array_equal(codec.decode(codec.encode(image, LOSSLESS)), image.pixels)
    decoded = codec.decode(codec.encode(image, "q=95"))
    assert decoded.shape == image.pixels.shape and decoded.dtype == np.uint8
    assert psnr(image.pixels, decoded, data_range=255) > 35


def test_redundant_planes_cost_little_in_lossless(make_image):
    import imagecodecs

    image = make_image(128, 8, seed=1)
    webp = get_codec("webp").encode(image, LOSSLESS)
    png = imagecodecs.png_encode(image.pixels, level=9)
    assert len(webp) < 1.2 * len(png)
