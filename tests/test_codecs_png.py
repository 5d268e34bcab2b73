"""PNG: the lossless reference, at the 8- or 16-bit word PNG offers."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS


@pytest.mark.parametrize(("bit_depth", "word"), [(1, 8), (8, 8), (10, 16), (12, 16), (16, 16)])
def test_exact_round_trip_and_ihdr_depth(bit_depth, word, make_image):
    codec = get_codec("png")
    image = make_image((30, 50), bit_depth, seed=bit_depth)
    data = codec.encode(image, LOSSLESS)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert data[24] == word and data[25] == 0  # bit depth, colour type gray
    np.testing.assert_array_equal(codec.decode(data), image.pixels)


def test_only_lossless(make_image):
    codec = get_codec("png")
    assert codec.settings() == [LOSSLESS]
    with pytest.raises(ValueError, match="no setting"):
        codec.encode(make_image(8, 8), "q=90")
