"""The VOI LUT module in a DICOM image's metadata (``meta["voi"]``), through the protocol
and the prepared-image cache."""

from __future__ import annotations

import numpy as np

from medbench.datasets import get_dataset
from medbench.datasets.cache import PreparedCache, prepare_image
from medbench.datasets.dicom import read_dicom
from medbench.datasets.protocols import PAPER, Protocol
from medbench.image import Image
from tests.fixture_formats import picture, write_dicom


def test_window_center_and_width_first_pair(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", picture((20, 20), 12), bits_stored=12,
                       window=([1500.0, 40.0], [1000.0, 400.0]), voi_function="SIGMOID")
    voi = read_dicom(path)[2]["voi"]
    assert voi == {"center": 1500.0, "width": 1000.0, "function": "SIGMOID", "lut": None,
                   "offset": 0.0, "scale": 1.0, "invert": False, "note": None}


def test_monochrome1_and_rescale_say_how_pixels_map_back(tmp_path):
    path = write_dicom(tmp_path / "m1.dcm", picture((20, 20), 10), "MONOCHROME1", 10,
                       slope=2.0, intercept=-100.0, window=([700.0], [300.0]))
    pixels, bits, meta = read_dicom(path)
    voi = meta["voi"]
    assert bits == 11 and voi["invert"] is True
    # Modality value of pixel v: the reader inverted within [0, 2046] after shifting by -100.
    assert (voi["offset"], voi["scale"]) == (-100.0 + 2047.0, -1.0)
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_allclose(voi["offset"] + voi["scale"] * pixels.astype(float), modality)


def test_voi_lut_sequence_as_us_and_as_ow(tmp_path):
    entries = list(range(0, 4000, 3))
    for as_ow in (False, True):
        path = write_dicom(tmp_path / f"l{as_ow}.dcm", picture((20, 20), 12), bits_stored=12,
                           voi_lut=(50, 12, entries, as_ow))
        voi = read_dicom(path)[2]["voi"]
        assert voi["center"] is None and voi["note"] is None
        assert voi["lut"] == {"entries": entries, "first": 50, "bits": 12,
                              "explanation": "TEST LUT"}


def test_no_window_and_a_bad_window(tmp_path):
    plain = write_dicom(tmp_path / "p.dcm", picture((20, 20), 12), bits_stored=12)
    assert read_dicom(plain)[2]["voi"] is None
    bad = write_dicom(tmp_path / "b.dcm", picture((20, 20), 12), bits_stored=12,
                      window=([100.0], [0.0]), voi_function="LINEAR_EXACT")
    pixels, _, meta = read_dicom(bad)  # read all the same
    assert meta["voi"]["center"] is None
    assert meta["voi"]["note"] == ("(0028,1051) Window Width of 0 is invalid: it must be "
                                   "above 0 for VOI LUT Function LINEAR_EXACT")


def test_the_window_follows_the_bit_depth_and_survives_the_cache(tmp_path):
    voi = {"center": 1.0, "width": 2.0, "function": "LINEAR", "lut": None, "offset": 4095.0,
           "scale": -1.0, "invert": True, "note": None}
    image = Image(picture((64, 64), 12), 12, "x", {"voi": voi})
    assert Protocol(None, 8).apply(image).meta["voi"]["scale"] == -4095 / 255
    assert Protocol(32, None).apply(image).meta["voi"] == voi  # a resize keeps values
    cache = PreparedCache(tmp_path / "cache")
    prepared = Protocol(None, 8).apply(image)
    cache.put("d", "ab" * 32, PAPER, prepared)
    assert cache.get("d", "ab" * 32, PAPER, "x").meta["voi"] == prepared.meta["voi"]


def test_dicom_files_of_a_folder_carry_their_window_to_the_prepared_image(tmp_path):
    write_dicom(tmp_path / "data" / "a.dcm", picture((64, 64), 12), "MONOCHROME1", 12,
                window=([2000.0], [1000.0]))
    dataset = get_dataset(f"folder:{tmp_path / 'data'}")
    record = dataset.records()[0]
    for cache in (None, PreparedCache(tmp_path / "c"), PreparedCache(tmp_path / "c")):
        image = prepare_image(dataset, record, PAPER, cache)  # miss, then hit
        assert image.meta["voi"]["center"] == 2000.0
        assert image.meta["voi"]["scale"] == -4095 / 255


def test_sample_tiles_carry_their_radiographs_window():
    dataset = get_dataset("sample")
    record = next(r for r in dataset.records() if r.meta["file"] == "RG1_UNCR.dcm")
    voi = dataset.load(record).meta["voi"]
    # RG1: MONOCHROME1, 15 bits, Window Center 15000 / Width 30000 in its header.
    assert (voi["center"], voi["width"], voi["invert"]) == (15000.0, 30000.0, True)
    assert (voi["offset"], voi["scale"]) == (32767.0, -1.0)
