"""Round trips of the built-in classical codecs (JPEG, JPEG 2000)."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.metrics import psnr
from medbench.codecs import codec_names, get_codec
from medbench.codecs.base import parse_setting
from medbench.errors import UnsupportedInput


def test_builtins_are_registered():
    assert {"jpeg", "jpeg2000"} <= set(codec_names())


def test_jpeg_settings_span_5_to_95():
    settings = get_codec("jpeg").settings()
    qualities = [parse_setting(s, "q") for s in settings]
    assert len(qualities) >= 8 and qualities == sorted(qualities)
    assert qualities[0] == 5 and qualities[-1] == 95


def test_jpeg_round_trip_and_rate_grows_with_quality(make_image):
    codec = get_codec("jpeg")
    image = make_image(96, 8)
    sizes, quality = [], []
    for setting in codec.settings():
        data = codec.encode(image, setting)
        decoded = codec.decode(data)
        assert decoded.dtype == np.uint8 and decoded.shape == image.pixels.shape
        sizes.append(len(data))
        quality.append(psnr(image.pixels, decoded, data_range=255))
    assert sizes == sorted(sizes)
    assert quality[-1] > quality[0] + 10


def test_jpeg_refuses_deeper_images(make_image):
    with pytest.raises(UnsupportedInput, match="12-bit"):
        get_codec("jpeg").encode(make_image(32, 12), "q=50")


@pytest.mark.parametrize("bad", ["q=0", "q=101", "q=50.5", "quality=50", "q=abc"])
def test_jpeg_out_of_range_quality_raises(make_image, bad):
    with pytest.raises(ValueError):
        get_codec("jpeg").encode(make_image(16, 8), bad)


@pytest.mark.parametrize("bit_depth", [8, 10, 12, 16])
def test_jpeg2000_lossless_is_bit_exact(make_image, bit_depth):
    codec = get_codec("jpeg2000")
    image = make_image(72, bit_depth)
    decoded = codec.decode(codec.encode(image, "lossless"))
    assert decoded.dtype == image.pixels.dtype
    np.testing.assert_array_equal(decoded, image.pixels)


def test_jpeg2000_declares_true_precision(make_image):
    """A 12-bit image is coded as 12-bit (SIZ precision), not padded to 16."""
    data = get_codec("jpeg2000").encode(make_image(64, 12), "lossless")
    siz = data.index(b"\xff\x51")
    # T.800 A.5.1: SIZ, Lsiz, Rsiz (2 bytes each), eight 4-byte sizes, Csiz (2), then Ssiz.
    ssiz = data[siz + 2 + 2 + 2 + 32 + 2]
    assert (ssiz & 0x7F) + 1 == 12


@pytest.mark.parametrize("bit_depth", [8, 12])
def test_jpeg2000_ratio_is_against_native_storage(make_image, bit_depth):
    codec = get_codec("jpeg2000")
    image = make_image(256, bit_depth)
    for ratio in (10, 40):
        data = codec.encode(image, f"ratio={ratio}")
        achieved = bit_depth * image.pixels.size / (8 * len(data))
        # OpenJPEG's rate control never overshoots the byte budget by much; on smooth
        # images it may land below it.
        assert 0.9 * ratio <= achieved <= 1.4 * ratio
        decoded = codec.decode(data)
        assert 25 < psnr(image.pixels, decoded, data_range=image.peak) < 80


def test_jpeg2000_settings_order_and_names():
    settings = get_codec("jpeg2000").settings()
    assert settings == [f"ratio={r}" for r in (160, 80, 40, 20, 10, 5)] + ["lossless"]


def test_jpeg2000_writes_no_fixed_paths(make_image, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    codec = get_codec("jpeg2000")
    codec.decode(codec.encode(make_image(32, 8), "ratio=10"))
    assert list(tmp_path.iterdir()) == []


def test_jpeg2000_rejects_ratio_below_one(make_image):
    with pytest.raises(ValueError, match="ratio"):
        get_codec("jpeg2000").encode(make_image(32, 8), "ratio=0.5")
