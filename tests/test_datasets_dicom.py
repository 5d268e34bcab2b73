"""DICOM reading: photometric interpretation, Presentation LUT Shape, Bits Stored, rescale."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.datasets.dicom import probe_dicom, read_dicom
from medbench.datasets.formats import read_image
from medbench.errors import ImageReadError
from tests.fixture_formats import picture, write_dicom


@pytest.mark.parametrize("bits_stored", [10, 12, 15])
@pytest.mark.parametrize(
    "photometric, lut_shape, inverted",
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", "INVERSE", True),  # meant to be displayed inverted
        ("MONOCHROME1", None, True),
        ("MONOCHROME1", "INVERSE", True),  # restates MONOCHROME1: inverted once, not twice
    ],
)
def test_polarity_and_bits_stored(tmp_path, bits_stored, photometric, lut_shape, inverted):
    scene = picture((30, 40), bits_stored)  # what the radiograph looks like (MONOCHROME2)
    peak = 2**bits_stored - 1
    stored = peak - scene.astype(np.int32) if inverted else scene
    path = write_dicom(tmp_path / "a.dcm", stored, photometric, bits_stored, lut_shape)
    pixels, bits, meta = read_dicom(path)
    assert bits == bits_stored and pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, scene)
    assert meta["photometric"] == photometric
    assert probe_dicom(path).bit_depth == bits_stored


def test_bits_above_bits_stored_are_ignored(tmp_path):
    scene = picture((16, 16), 12)
    noisy_high_bits = scene.astype(np.uint16) | np.uint16(0xF000)
    pixels, bits, _ = read_dicom(write_dicom(tmp_path / "a.dcm", noisy_high_bits, bits_stored=12))
    assert bits == 12
    np.testing.assert_array_equal(pixels, scene)


def test_rescale_slope_and_intercept(tmp_path):
    stored = picture((20, 20), 10)
    path = write_dicom(tmp_path / "a.dcm", stored, bits_stored=10, slope=2.0, intercept=-100.0)
    pixels, bits, _ = read_dicom(path)
    # Output range [-100, 1946] shifted to start at 0: 2046 levels need 11 bits.
    assert bits == 11
    np.testing.assert_array_equal(pixels, stored.astype(np.int64) * 2)
    assert probe_dicom(path).bit_depth == 11


def test_identity_rescale_keeps_bits_stored(tmp_path):
    stored = picture((20, 20), 12)
    path = write_dicom(tmp_path / "a.dcm", stored, bits_stored=12, slope=1.0, intercept=0.0)
    pixels, bits, _ = read_dicom(path)
    assert bits == 12
    np.testing.assert_array_equal(pixels, stored)


def test_signed_storage_is_shifted_to_start_at_zero(tmp_path):
    values = picture((20, 20), 12).astype(np.int32) - 2048  # -2048 .. 2047
    pixels, bits, _ = read_dicom(write_dicom(tmp_path / "a.dcm", values, signed=True))
    assert bits == 12
    np.testing.assert_array_equal(pixels, values + 2048)


def test_monochrome1_with_rescale_inverts_after_the_rescale(tmp_path):
    scene = picture((20, 20), 10)
    stored = 1023 - scene.astype(np.int32)
    path = write_dicom(tmp_path / "a.dcm", stored, "MONOCHROME1", 10, "INVERSE", 1.0, -512.0)
    pixels, bits, _ = read_dicom(path)
    assert bits == 10
    np.testing.assert_array_equal(pixels, scene)


def test_corrupt_dicom(tmp_path):
    path = tmp_path / "bad.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    with pytest.raises(ImageReadError, match="bad.dcm"):
        read_image(path)
    (tmp_path / "text.dcm").write_text("not dicom at all")
    with pytest.raises(ImageReadError, match="not a PNG, JPEG, TIFF or DICOM"):
        read_image(tmp_path / "text.dcm")


def test_truncated_pixel_data(tmp_path):
    good = write_dicom(tmp_path / "a.dcm", picture((64, 64), 12)).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(good[:-3000])
    with pytest.raises(ImageReadError, match="cut.dcm"):
        read_dicom(tmp_path / "cut.dcm")


def test_dicom_without_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", None)
    with pytest.raises(ImageReadError, match="no pixel data"):
        read_dicom(path)
    with pytest.raises(ImageReadError, match="no pixel data"):
        probe_dicom(path)


def test_colour_dicom_is_refused(tmp_path):
    rgb = np.dstack([picture((8, 8), 8)] * 3)
    path = write_dicom(tmp_path / "a.dcm", rgb)
    with pytest.raises(ImageReadError, match="colour DICOM"):
        read_dicom(path)


def test_multi_frame_dicom_is_refused(tmp_path):
    frames = np.stack([picture((8, 8), 12, seed) for seed in range(3)])
    path = write_dicom(tmp_path / "a.dcm", frames, frames=3)
    with pytest.raises(ImageReadError, match="multi-frame DICOM \\(3 frames\\)"):
        read_dicom(path)


@pytest.mark.parametrize("elements, expected", [
    ({"PixelSpacing": [0.2, 0.1], "ImagerPixelSpacing": [0.3, 0.3]},
     (0.2, 0.1, "(0028,0030) Pixel Spacing")),
    ({"ImagerPixelSpacing": [0.15, 0.15]}, (0.15, 0.15, "(0018,1164) Imager Pixel Spacing")),
    ({"PixelSpacing": [0.0, 0.1], "ImagerPixelSpacing": [0.15, 0.15]},
     (0.15, 0.15, "(0018,1164) Imager Pixel Spacing")),  # an unusable value is passed over
])
def test_pixel_spacing_is_read_rows_then_columns(tmp_path, elements, expected):
    path = write_dicom(tmp_path / "a.dcm", picture((8, 8), 12), **elements)
    meta = read_dicom(path)[2]
    assert (meta["spacing_row_mm"], meta["spacing_col_mm"], meta["spacing_source"]) == expected


def test_a_dicom_without_spacing_records_none(tmp_path):
    meta = read_dicom(write_dicom(tmp_path / "a.dcm", picture((8, 8), 12)))[2]
    assert "spacing_row_mm" not in meta and "spacing_source" not in meta
