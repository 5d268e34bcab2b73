"""The shared PNG/JPEG/TIFF readers: same picture back, MONOCHROME2, the file's bit depth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from medbench.datasets.files import FileHasher, file_sha256
from medbench.datasets.formats import probe_image, read_image, sniff
from medbench.datasets.raster import write_png as medbench_write_png
from medbench.errors import ImageReadError
from tests.fixture_formats import picture, write_jpeg, write_png, write_tiff


def test_8_bit_png(tmp_path):
    pixels = picture((40, 50), 8)
    out, bits, meta = read_image(write_png(tmp_path / "a.png", pixels))
    assert bits == 8 and out.dtype == np.uint8
    np.testing.assert_array_equal(out, pixels)
    assert meta["format"] == "png"
    assert probe_image(tmp_path / "a.png").bit_depth == 8


def test_16_bit_png_without_sbit_is_16_bit_even_when_values_fit_12(tmp_path):
    pixels = picture((40, 50), 12)  # values <= 4095, but the file cannot say so
    out, bits, _ = read_image(write_png(tmp_path / "a.png", pixels))
    assert bits == 16 and out.dtype == np.uint16
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("sbit", [10, 12, 15])
def test_16_bit_png_with_sbit_is_read_at_sbit_bits(tmp_path, sbit):
    pixels = picture((40, 50), sbit)
    path = write_png(tmp_path / "a.png", pixels, sbit=sbit)
    out, bits, meta = read_image(path)
    assert bits == sbit and meta["sbit"] == sbit
    np.testing.assert_array_equal(out, pixels)
    probe = probe_image(path)
    assert (probe.height, probe.width, probe.bit_depth) == (40, 50, sbit)


@pytest.mark.parametrize("bit_depth", [6, 8, 10, 12, 16])
def test_medbench_png_writer_round_trips_exactly(tmp_path, bit_depth):
    pixels = picture((33, 47), bit_depth)
    medbench_write_png(tmp_path / "x.png", pixels, bit_depth)
    out, bits, _ = read_image(tmp_path / "x.png")
    assert bits == bit_depth
    np.testing.assert_array_equal(out, pixels)
    if bit_depth == 12:  # a plain viewer sees full contrast: top value near 65535
        raw = np.asarray(PILImage.open(tmp_path / "x.png"))
        assert raw.max() == 65535


def test_rgba_png_of_a_grey_image_is_grey(tmp_path):
    grey = picture((30, 30), 8)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    out, bits, meta = read_image(write_png(tmp_path / "a.png", rgba))
    assert bits == 8 and meta["stored_as"] == "RGBA"
    np.testing.assert_array_equal(out, grey)


def test_colour_png_is_refused_with_the_reason(tmp_path):
    grey = picture((30, 30), 8)
    rgb = np.dstack([grey, grey, grey])
    rgb[5:10, 5:10, 0] = 255 - rgb[5:10, 5:10, 0]
    with pytest.raises(ImageReadError, match="colour PNG"):
        read_image(write_png(tmp_path / "a.png", rgb))


def test_palette_and_low_bit_depth_pngs(tmp_path):
    grey = picture((16, 16), 8)
    PILImage.fromarray(grey).convert("P").save(tmp_path / "p.png")
    out, bits, _ = read_image(tmp_path / "p.png")
    assert bits == 8
    np.testing.assert_array_equal(out, np.asarray(PILImage.open(tmp_path / "p.png").convert("L")))
    two_bit = (np.arange(256).reshape(16, 16) % 4).astype(np.uint8)
    PILImage.fromarray(two_bit * 85).save(tmp_path / "b2.png", bits=2)
    out, bits, _ = read_image(tmp_path / "b2.png")
    assert bits == 2
    np.testing.assert_array_equal(out, two_bit)


def test_unreadable_and_non_image_files(tmp_path):
    (tmp_path / "trunc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 5)
    with pytest.raises(ImageReadError, match="truncated PNG"):
        read_image(tmp_path / "trunc.png")
    good = write_png(tmp_path / "good.png", picture((64, 64), 8)).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError, match="unreadable PNG"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageReadError, match="not a PNG, JPEG, TIFF or DICOM"):
        read_image(tmp_path / "notes.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="zero-byte"):
        read_image(tmp_path / "empty.png")


def test_format_is_told_by_content_not_name(tmp_path):
    pixels = picture((32, 32), 8)
    write_jpeg(tmp_path / "really_a_jpeg.png", pixels)
    assert sniff(tmp_path / "really_a_jpeg.png") == "jpeg"
    out, bits, meta = read_image(tmp_path / "really_a_jpeg.png")
    assert meta["format"] == "jpeg" and bits == 8


def test_grey_jpeg_and_rgb_saved_grey_jpeg(tmp_path):
    pixels = picture((64, 64), 8)
    grey, _, _ = read_image(write_jpeg(tmp_path / "g.jpg", pixels))
    assert np.abs(grey.astype(int) - pixels).mean() < 3  # lossy, but the same picture
    rgb_file = write_jpeg(tmp_path / "c.jpg", np.dstack([pixels] * 3))
    out, bits, meta = read_image(rgb_file)
    assert bits == 8 and out.shape == (64, 64) and meta["stored_as"] == "YCbCr"
    assert np.abs(out.astype(int) - pixels).mean() < 3


def test_colour_jpeg_is_refused(tmp_path):
    pixels = picture((64, 64), 8)
    rgb = np.dstack([pixels, pixels // 2, 255 - pixels])
    with pytest.raises(ImageReadError, match="colour JPEG"):
        read_image(write_jpeg(tmp_path / "c.jpg", rgb))


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("white_is_zero", [False, True])
def test_tiff_grey_and_white_is_zero(tmp_path, bit_depth, white_is_zero):
    pixels = picture((24, 40), bit_depth)
    path = write_tiff(tmp_path / "a.tif", pixels, white_is_zero=white_is_zero)
    out, bits, _ = read_image(path)
    assert bits == bit_depth
    np.testing.assert_array_equal(out, pixels)  # MONOCHROME2 whatever the storage
    assert probe_image(path).bit_depth == bit_depth


def test_multi_page_tiff_is_refused(tmp_path):
    path = write_tiff(tmp_path / "a.tif", picture((8, 8), 8), pages=3)
    with pytest.raises(ImageReadError, match="multi-page TIFF"):
        read_image(path)


def test_hasher_remembers_by_size_and_mtime(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    hasher = FileHasher()
    first = hasher.hash(path)
    assert first == file_sha256(path)
    size, mtime = hasher.stamp(path)
    hasher.remember(str(path), size, mtime, "remembered")
    assert hasher.hash(path) == "remembered"  # trusted: same size and mtime
    path.write_bytes(b"abcd")
    assert hasher.hash(path) == file_sha256(path)  # changed file: hashed again
