"""DICOM as archives hold it: one decision for probe and reader, compressed twins.

Every DICOM in pydicom-data that medbench accepts is probed and read to the same bit depth,
and read to pydicom's own ``pixel_array`` after the documented rescale and polarity
(:mod:`medbench.datasets.dicom`). Files medbench refuses (colour, multi-frame, no pixel
data, a bad header) are refused by the probe with a reason naming the file; the reader
refuses only pixel data that pydicom cannot decode either.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from medbench.datasets.dicom import probe_dicom, read_dicom
from medbench.datasets.formats import probe_image, read_image
from medbench.errors import ImageReadError


def _expected(path: Path) -> tuple[np.ndarray, int]:
    """pydicom's pixel_array after the documented Modality LUT and polarity."""
    ds = pydicom.dcmread(path, force=True)
    stored = ds.pixel_array.astype(np.int64)
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    lo_in, hi_in = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1))
    lo, hi = sorted((lo_in * slope + intercept, hi_in * slope + intercept))
    depth = max(1, int(np.ceil(np.log2(round(hi - lo) + 1))))
    values = np.clip(np.rint(stored * slope + intercept - lo), 0, 2**depth - 1)
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")) == "INVERSE":
        values = 2**depth - 1 - values
    return values, depth


def _pydicom_decodes(path: Path) -> bool:
    try:
        _ = pydicom.dcmread(path, force=True).pixel_array
    except Exception:
        return False
    return True


def installed_test_dicoms() -> list[str]:
    """Every DICOM that pydicom and pydicom-data ship on disk. (``get_testdata_files``
    would also try to download pydicom's online test files: no network in CI.)"""
    local = [str(p) for p in (Path(DATA_ROOT) / "test_files").glob("*.dcm")]
    shipped = [p for source in external_data_sources().values()
               for p in source.get_paths("*.dcm", DataTypes.DATASET)]
    return sorted(set(local + shipped))


def test_every_accepted_pydicom_data_dicom_probes_and_reads_as_pydicom_decodes_it():
    accepted = refused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in installed_test_dicoms():
            path = Path(name)
            try:
                probe = probe_image(path)
            except ImageReadError as exc:
                assert path.name in str(exc), str(exc)  # one line naming the file and why
                refused += 1
                continue
            try:
                pixels, depth, _ = read_image(path)
            except ImageReadError as exc:  # only what pydicom cannot decode either
                assert not _pydicom_decodes(path), f"{path.name}: {exc}"
                refused += 1
                continue
            accepted += 1
            assert probe.bit_depth == depth, path.name
            assert (probe.height, probe.width) == pixels.shape, path.name
            if path.name == "JPEG-lossy.dcm":  # pydicom's libjpeg refuses it; imagecodecs reads it
                continue
            expected, expected_depth = _expected(path)
            assert expected_depth == depth, path.name
            np.testing.assert_array_equal(pixels, expected, err_msg=path.name)
    assert accepted >= 30 and refused >= 50


def test_ten_bit_monochrome1_cr_probes_and_reads_ten_bit_inverted_once():
    """The issue's wrong number: RG3_UNCR is 10-bit MONOCHROME1, listed and read 10-bit."""
    path = Path(pydicom.data.get_testdata_file("RG3_UNCR.dcm"))
    assert probe_dicom(path).bit_depth == 10
    pixels, depth, meta = read_dicom(path)
    assert depth == 10 and pixels.max() <= 1023 and meta["photometric"] == "MONOCHROME1"
    twin, twin_depth, _ = read_dicom(Path(pydicom.data.get_testdata_file("RG3_J2KR.dcm")))
    assert twin_depth == 10
    np.testing.assert_array_equal(pixels, twin)


# -- compressed twins written here --------------------------------------------------------
def _uncompressed(tmp_path: Path, pixels: np.ndarray, bits: int, photometric: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    path = tmp_path / "twin_native.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _encapsulated(native: Path, syntax: str, stream: bytes, out: Path) -> Path:
    ds = pydicom.dcmread(native)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.save_as(out, enforce_file_format=True)
    return out


def _compressed_twins(native: Path, pixels: np.ndarray, bits: int, tmp_path: Path) -> dict:
    import imagecodecs

    from medbench.codecs.htj2k import set_precision

    twins = {}
    ds = pydicom.dcmread(native)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    twins["j2k_lossless"] = tmp_path / "twin_j2k.dcm"
    ds.save_as(twins["j2k_lossless"], enforce_file_format=True)
    ds = pydicom.dcmread(native)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    twins["rle"] = tmp_path / "twin_rle.dcm"
    ds.save_as(twins["rle"], enforce_file_format=True)
    twins["jpegls_lossless"] = _encapsulated(
        native, JPEGLSLossless, bytes(imagecodecs.jpegls_encode(pixels, level=0)),
        tmp_path / "twin_jls.dcm")
    twins["jpeg_lossless_sv1"] = _encapsulated(
        native, JPEGLosslessSV1,
        bytes(imagecodecs.jpeg8_encode(pixels, lossless=True, predictor=1, bitspersample=bits)),
        tmp_path / "twin_sv1.dcm")
    offset = (1 << 15) - (1 << (bits - 1))  # as the htj2k codec codes a bits-bit image
    stream = imagecodecs.htj2k_encode((pixels.astype(np.uint32) + offset).astype(np.uint16),
                                      reversible=True)
    twins["htj2k_lossless"] = _encapsulated(
        native, HTJ2KLossless, set_precision(bytes(stream), 16, bits), tmp_path / "twin_htj2k.dcm")
    ds = pydicom.dcmread(native)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    twins["deflate"] = tmp_path / "twin_deflate.dcm"
    ds.save_as(twins["deflate"], enforce_file_format=True)
    return twins


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_compressed_dicom_reads_as_its_uncompressed_twin(tmp_path, photometric):
    bits = 12
    rng = np.random.default_rng(7)
    ramp = np.add.outer(np.arange(48), np.arange(40)) * 40
    pixels = np.clip(ramp + rng.integers(0, 64, ramp.shape), 0, 2**bits - 1).astype(np.uint16)
    native = _uncompressed(tmp_path, pixels, bits, photometric)
    reference, depth, _ = read_dicom(native)
    assert depth == bits
    expected = pixels if photometric == "MONOCHROME2" else (2**bits - 1) - pixels
    np.testing.assert_array_equal(reference, expected)
    for name, path in _compressed_twins(native, pixels, bits, tmp_path).items():
        assert probe_dicom(path).bit_depth == bits, name
        read, read_depth, _ = read_dicom(path)
        assert read_depth == bits, name
        np.testing.assert_array_equal(read, reference, err_msg=name)
