"""AVIF: the monochrome (4:0:0) path for lossless and lossy, and the AV1 depths."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.codecs import get_codec
from medbench.codecs.avif import container_depth
from medbench.codecs.base import LOSSLESS

imagecodecs = pytest.importorskip("imagecodecs")


def av1_config(data: bytes) -> tuple[bool, int]:
    """(monochrome, bit depth) from the av1C box (AV1-ISOBMFF §2.3.3)."""
    at = data.find(b"av1C")
    assert at >= 0, "no av1C box"
    flags = data[at + 6]
    high_bitdepth, twelve_bit, monochrome = (flags >> 6) & 1, (flags >> 5) & 1, (flags >> 4) & 1
    depth = 12 if twelve_bit else 10 if high_bitdepth else 8
    return bool(monochrome), depth


@pytest.mark.parametrize(("bit_depth", "coded"), [(8, 8), (9, 10), (10, 10), (11, 12), (12, 12)])
def test_every_setting_is_monochrome_at_the_av1_depth(bit_depth, coded, make_image):
    assert container_depth(bit_depth) == coded
    codec = get_codec("avif")
    image = make_image(32, bit_depth)
    for setting in ("q=50", "q=99", LOSSLESS):
        data = codec.encode(image, setting)
        assert av1_config(data) == (True, coded), setting
        decoded = codec.decode(data)
        assert decoded.ndim == 2 and decoded.dtype == image.pixels.dtype


def test_imagecodecs_codes_2d_input_losslessly_at_any_quality(make_image):
    """Why lossy settings go through the 3-plane yuv400 route (see AvifCodec)."""
    pixels = make_image(48, 12).pixels
    sizes = {len(imagecodecs.avif_encode(pixels, level=q, bitspersample=12)) for q in (20, 90)}
    assert len(sizes) == 1
    lossy = get_codec("avif").encode(make_image(48, 12), "q=20")
    assert len(lossy) < 0.5 * sizes.pop()


def test_lossy_error_shrinks_with_quality(make_image):
    codec = get_codec("avif")
    image = make_image(96, 12, seed=2)
    errors = []
    for setting in ("q=30", "q=70", "q=99"):
        decoded = codec.decode(codec.encode(image, setting)).astype(np.int64)
        errors.append(float(np.mean((decoded - image.pixels) ** 2)))
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 4
