"""Display windows against pydicom's VOI LUT functions, and display-referred scores.

The reference is ``pydicom.pixels.apply_windowing``/``apply_voi`` (PS3.3 C.11.2) on the
file's Modality LUT output (``apply_modality_lut``), then the Presentation LUT by hand
(MONOCHROME1: minimum shown white). pydicom's window output spans the input's value
range, its VOI LUT output the LUT's entries; both are scaled to 0-255 and rounded here,
as medbench's 8-bit display is. medbench applies the window to the pixels its reader
returned (MONOCHROME2, shifted to start at 0), mapped back to the modality values:
the two must agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

from medbench.benchmark.metrics import display, measure, psnr, ssim
from medbench.benchmark.metrics.display import DisplayReference, display_window
from medbench.datasets.formats import read_image
from medbench.datasets.protocols import Protocol
from medbench.image import Image
from tests.conftest import radiograph_like
from tests.fixture_formats import write_dicom


def _viewer(path, index_range=None):
    """What a viewer shows (0-255): Modality LUT, VOI LUT, Presentation LUT, by pydicom."""
    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds)
    if "VOILUTSequence" in ds:
        out = apply_voi(modality.astype(np.int64), ds).astype(np.float64)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        shown = out * 255.0 / (2**bits - 1)
    else:
        out = apply_windowing(modality, ds)
        lo, hi = index_range
        shown = (out - lo) * 255.0 / (hi - lo)
    shown = np.clip(np.rint(shown), 0, 255)
    inverted = ds.PhotometricInterpretation == "MONOCHROME1" or \
        str(ds.get("PresentationLUTShape", "")) == "INVERSE"
    return (255 - shown if inverted else shown).astype(np.uint8)


def _shown(path):
    """What medbench shows: the reader's pixels through ``--display dicom``."""
    pixels, bits, meta = read_image(path)
    window = display_window("dicom", pixels, meta)
    assert isinstance(window, display.Window), window
    return window.apply(pixels), window


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("function,center,width", [
    ("LINEAR", 1500.0, 1200.0), ("LINEAR_EXACT", 2047.5, 800.0), ("SIGMOID", 1800.0, 900.0),
    ("LINEAR", 3000.0, 1.0),
])
def test_a_window_shows_what_pydicom_shows(tmp_path, photometric, function, center, width):
    stored = radiograph_like((40, 50), 12, 3)
    stored[0, :4] = [0, 4095, int(center), int(center) + 1]
    path = write_dicom(tmp_path / "w.dcm", stored, photometric, 12,
                       window=([center, 99.0], [width, 5.0]),  # only the first pair counts
                       voi_function=None if function == "LINEAR" else function)
    shown, window = _shown(path)
    np.testing.assert_array_equal(shown, _viewer(path, (0, 4095)))
    assert f"center {center:g}, width {width:g}" in window.label
    assert ("inverted" in window.label) == (photometric == "MONOCHROME1")


def test_a_window_on_rescaled_signed_pixels(tmp_path):
    stored = radiograph_like((30, 30), 12, 4).astype(np.int32) - 2048
    path = write_dicom(tmp_path / "s.dcm", stored, "MONOCHROME1", 12, signed=True,
                       slope=1.0, intercept=-1000.0, window=([-900.0], [1500.0]))
    shown, _ = _shown(path)
    np.testing.assert_array_equal(shown, _viewer(path, (-2048 - 1000, 2047 - 1000)))


@pytest.mark.parametrize("as_ow", [False, True])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_a_voi_lut_sequence_shows_what_pydicom_shows(tmp_path, as_ow, photometric):
    stored = radiograph_like((40, 40), 12, 5)
    stored[0, :3] = [0, 100, 4095]  # below the first value mapped, and beyond the last
    entries = [int(4095 * (i / 2999) ** 0.5) for i in range(3000)]  # a gamma-like curve
    path = write_dicom(tmp_path / "l.dcm", stored, photometric, 12,
                       window=([2000.0], [500.0]),  # present too: the LUT is preferred
                       voi_lut=(600, 12, entries, as_ow))
    shown, window = _shown(path)
    np.testing.assert_array_equal(shown, _viewer(path))
    assert "VOI LUT 'TEST LUT' (3000 entries from 600, 12 bits" in window.label


def test_the_window_follows_the_paper_protocol_to_8_bits(tmp_path):
    """``paper`` requantizes 12 to 8 bits: the window is rescaled with the pixels, so an
    8-bit pixel v is windowed at the modality value v·4095/255 (MONOCHROME1 inverted)."""
    stored = radiograph_like((256, 256), 12, 6)
    path = write_dicom(tmp_path / "p.dcm", stored, "MONOCHROME1", 12,
                       window=([1700.0], [900.0]))
    pixels, bits, meta = read_image(path)
    prepared = Protocol(256, 8).apply(Image(pixels, bits, "p", meta))
    assert prepared.bit_depth == 8 and prepared.meta["voi"]["scale"] == -4095 / 255
    window = display_window("dicom", prepared.pixels, prepared.meta)
    modality = 4095.0 - prepared.pixels * (4095 / 255)  # back to the stored scale
    ds = pydicom.dcmread(path)
    expected = 255 - np.clip(np.rint(apply_windowing(modality, ds) * 255 / 4095), 0, 255)
    np.testing.assert_array_equal(window.apply(prepared.pixels), expected.astype(np.uint8))


def test_images_without_a_dicom_window_get_a_note(tmp_path):
    plain = write_dicom(tmp_path / "n.dcm", radiograph_like((20, 20), 12), bits_stored=12)
    pixels, _, meta = read_image(plain)
    note = display_window("dicom", pixels, meta)
    assert isinstance(note, str) and "no (0028,1050) Window Center" in note
    bad = write_dicom(tmp_path / "b.dcm", radiograph_like((20, 20), 12), bits_stored=12,
                      window=([100.0], [0.5]))
    pixels, _, meta = read_image(bad)  # the image is read; its window is refused
    note = display_window("dicom", pixels, meta)
    assert isinstance(note, str) and "(0028,1051) Window Width of 0.5 is invalid" in note


def test_presets_are_fractions_of_the_images_percentile_range():
    pixels = np.arange(1000, 3000, dtype=np.uint16).reshape(40, 50)  # P1 1019, P99 2979
    low, high = 1019.0, 2979.0
    for name, (fc, fw) in display.PRESETS.items():
        window = display_window(name, pixels, {})
        center, width = low + fc * (high - low), fw * (high - low)
        expected = display.linear_table(center, width)[pixels]
        np.testing.assert_array_equal(window.apply(pixels), expected)
        assert window.label.startswith(f"{name} (P1 1019, P99 2979: center {center:.6g}")
    lung = display_window("lung", pixels, {}).apply(pixels)
    assert lung[pixels <= low].max() == 0 and lung[pixels >= low + 0.6 * (high - low)].min() == 255
    bone = display_window("bone", pixels, {}).apply(pixels)
    assert bone[pixels <= low + 0.6 * (high - low) - 1].max() == 0 and bone.max() == 255
    flat = np.full((30, 30), 700, np.uint16)
    assert "percentiles are both 700" in display_window("mediastinum", flat, {})


def test_display_scores_are_the_scores_of_the_windowed_images():
    ref = radiograph_like((120, 100), 12, 7)
    rng = np.random.default_rng(8)
    dec = np.clip(ref + rng.integers(-30, 31, ref.shape), 0, 4095).astype(ref.dtype)
    window = display_window("lung", ref, {})
    shown_ref, shown_dec = window.apply(ref), window.apply(dec)
    row = measure(ref, dec, 1000, 12, perceptual=("vif", "fsim"),
                  display=DisplayReference(window, ref))
    assert row["display_psnr"] == pytest.approx(psnr(shown_ref, shown_dec, data_range=255),
                                                abs=1e-12)
    assert row["display_ssim"] == pytest.approx(ssim(shown_ref, shown_dec, data_range=255),
                                                abs=1e-12)
    from medbench.benchmark.metrics import fsim, vifp

    assert row["display_vif"] == pytest.approx(vifp(shown_ref, shown_dec, data_range=255))
    assert row["display_fsim"] == pytest.approx(fsim(shown_ref, shown_dec, data_range=255))
    assert "display_gmsd" not in row  # not asked for: the column stays empty
    assert row["display_psnr"] < row["psnr"]  # the window magnifies the error inside it
    exact = measure(ref, ref.copy(), 1000, 12, perceptual=("vif", "gmsd", "haarpsi", "fsim"),
                    display=DisplayReference(window, ref))
    assert (exact["display_psnr"], exact["display_ssim"]) == (math.inf, 1.0)
    assert [exact[f"display_{n}"] for n in ("vif", "gmsd", "haarpsi", "fsim")] == [1, 0, 1, 1]
