"""12-bit JPEG: the precision each setting writes, lossless SV1, refusal of deeper images."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.metrics import psnr
from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS, parse_setting


def frame_header(data: bytes) -> tuple[int, int]:
    """(SOFn marker, sample precision P) found by walking the JPEG marker segments."""
    assert data[:2] == b"\xff\xd8"
    at = 2
    while at < len(data):
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3):
            return marker, data[at + 4]
        at += 2 + length
    raise AssertionError("no SOF marker")


@pytest.mark.parametrize(("bit_depth", "precision"), [(8, 8), (9, 12), (10, 12), (12, 12)])
def test_lossy_precision(bit_depth, precision, make_image):
    image = make_image(48, bit_depth)
    data = get_codec("jpeg12").encode(image, "q=90")
    marker, p = frame_header(data)
    assert p == precision
    assert marker in ((0xC0, 0xC1) if precision == 8 else (0xC1,))  # 12-bit is Extended


@pytest.mark.parametrize("bit_depth", [8, 9, 10, 11, 12])
def test_lossless_is_process_14_at_the_exact_depth(bit_depth, make_image):
    codec = get_codec("jpeg12")
    image = make_image((40, 56), bit_depth, seed=bit_depth)
    data = codec.encode(image, LOSSLESS)
    assert frame_header(data) == (0xC3, bit_depth)
    np.testing.assert_array_equal(codec.decode(data), image.pixels)


def test_twelve_bit_quality_sweep_spans_a_useful_range(make_image):
    codec = get_codec("jpeg12")
    image = make_image(128, 12, seed=1)
    sizes, quality = [], []
    for setting in codec.settings()[:-1]:
        data = codec.encode(image, setting)
        sizes.append(8 * len(data) / image.pixels.size)
        quality.append(psnr(image.pixels, codec.decode(data), data_range=image.peak))
    assert sizes == sorted(sizes) and quality == sorted(quality)
    assert parse_setting(codec.settings()[0], "q") == 5
    assert sizes[-1] > 4 * sizes[0]


def test_a_libjpeg_without_12_bit_makes_it_unavailable(monkeypatch):
    import imagecodecs

    monkeypatch.setattr(imagecodecs.JPEG8, "all_precisions", False)
    reason = get_codec("jpeg12").unavailable_reason()
    assert reason is not None and "12-bit" in reason and "pip install" in reason
