"""JPEG-LS: the near-lossless bound, the true precision P, and error rows for broken bounds."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.cells import code_cell
from medbench.codecs import _charls, get_codec
from medbench.codecs.base import LOSSLESS, Codec
from medbench.errors import UnsupportedInput
from medbench.image import Image


def sof55_precision(data: bytes) -> int:
    """P of the JPEG-LS frame header (SOF55 = FFF7: length(2) then P(1))."""
    at = data.find(b"\xff\xf7")
    assert at >= 0, "no SOF55 marker"
    return data[at + 4]


@pytest.mark.parametrize("bit_depth", [8, 10, 12, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_near_lossless_bound_holds(bit_depth, seed, make_image):
    codec = get_codec("jpegls")
    image = make_image((96, 80), bit_depth, seed=seed)
    for setting in codec.settings():
        decoded = codec.decode(codec.encode(image, setting))
        error = np.abs(decoded.astype(np.int64) - image.pixels.astype(np.int64)).max()
        assert error <= codec.max_error(setting), (setting, error)
        if setting != LOSSLESS:
            # the bound is used, not just respected by coding losslessly
            assert error == codec.near(setting), (setting, error)
        assert decoded.max() <= image.peak  # MAXVAL = 2**P - 1 clamps the reconstruction


def test_near_lossless_bound_holds_on_a_real_radiograph():
    from medbench.datasets import get_dataset

    dataset = get_dataset("sample")
    record = next(r for r in dataset.records() if r.image_id.startswith("rg3"))
    image = dataset.load(record)  # 10-bit CR tibia at native depth
    codec = get_codec("jpegls")
    for setting in codec.settings():
        decoded = codec.decode(codec.encode(image, setting))
        error = np.abs(decoded.astype(np.int64) - image.pixels.astype(np.int64)).max()
        assert error <= codec.max_error(setting), (setting, error)


@pytest.mark.parametrize("bit_depth", [2, 8, 10, 12, 16])
def test_stream_declares_the_true_precision(bit_depth, make_image):
    data = get_codec("jpegls").encode(make_image(32, bit_depth), LOSSLESS)
    assert sof55_precision(data) == bit_depth


def test_true_precision_is_cheaper_than_imagecodecs_16_bit(make_image):
    import imagecodecs

    image = make_image(128, 10, seed=5)
    ours = get_codec("jpegls").encode(image, LOSSLESS)
    as_16_bit = imagecodecs.jpegls_encode(image.pixels)
    assert sof55_precision(as_16_bit) == 16
    assert len(ours) < len(as_16_bit)
    np.testing.assert_array_equal(imagecodecs.jpegls_decode(ours), image.pixels)


def test_without_a_charls_library_only_word_sized_depths_are_coded(monkeypatch, make_image):
    monkeypatch.setattr(_charls, "load_charls", lambda: None)
    codec = get_codec("jpegls")
    with pytest.raises(UnsupportedInput, match="12-bit precision"):
        codec.encode(make_image(32, 12), LOSSLESS)
    image = make_image(32, 16)
    data = codec.encode(image, "near=2")
    assert sof55_precision(data) == 16
    assert np.abs(codec.decode(data).astype(int) - image.pixels).max() <= 2


def test_near_larger_than_the_standard_allows_is_unsupported(make_image):
    with pytest.raises(UnsupportedInput, match="at most 1"):
        get_codec("jpegls").encode(make_image(16, 2), "near=2")


class _BrokenNearCodec(Codec):
    """Promises ``near=1`` but adds an error of 3 to one pixel."""

    name = "broken-near"
    bit_depths = (12,)
    rate_knob = "test"

    def settings(self) -> list[str]:
        return ["near=1"]

    def max_error(self, setting: str) -> int | None:
        return 1

    def encode(self, image: Image, setting: str) -> bytes:
        pixels = image.pixels.copy()
        pixels[0, 0] += 3
        return pixels.tobytes() + np.array(pixels.shape, dtype=np.uint32).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        h, w = np.frombuffer(data[-8:], dtype=np.uint32)
        return np.frombuffer(data[:-8], dtype=np.uint16).reshape(int(h), int(w)).copy()


def test_a_violated_bound_becomes_an_error_row(make_image):
    image = make_image(24, 12)
    row = code_cell(_BrokenNearCodec(), "near=1", image, repeats=0)
    assert row.status == "error"
    assert "max_abs_error <= 1" in row.error and "max_abs_error=3" in row.error
    assert row.max_abs_error == 3  # the damage stays visible


def test_a_kept_bound_stays_ok(make_image):
    row = code_cell(get_codec("jpegls"), "near=4", make_image(32, 12), repeats=0)
    assert row.status == "ok" and row.max_abs_error <= 4
