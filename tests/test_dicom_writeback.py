"""Coded images written back as DICOM: pydicom decodes exactly what medbench scored.

Runs on ``sample`` (MONOCHROME1 CR tiles, 15- and 10-bit) under the native protocol, plus
``bits=8`` for JPEG baseline, then exports; every written file is read with pydicom's
strict validation, its embedded stream hashes to the row's ``stream_sha256``, and pydicom
(with the pylibjpeg plugins) decodes it to the pixels medbench's own decoder produced.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pydicom.config
import pytest
from pydicom.dataset import validate_file_meta
from pydicom.encaps import generate_frames

from medbench.benchmark.runner import RunConfig, run
from medbench.codecs import get_codec
from medbench.datasets import get_dataset
from medbench.writeback import export_run

#: DICOM-capable codec → (a lossy setting, the lossless setting) checked on every image.
CAPABLE = {"jpeg12": "q=50", "jpegls": "near=2", "jpeg2000": "ratio=20", "htj2k": "qstep=0.004"}
DCT_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
LOSSY_METHODS = {"jpeg": "ISO_10918_1", "jpeg12": "ISO_10918_1", "jpegls": "ISO_14495_1",
                 "jpeg2000": "ISO_15444_1", "htj2k": "ISO_15444_15"}


def _run(out: Path, codecs: list[str], bit_depth: str | None = None):
    config = RunConfig(codecs=codecs, datasets=["sample"], protocol="native",
                       bit_depth=bit_depth, limit=2, seed=1, repeats=0, workers=1,
                       use_cache=False)
    return run(config, out)


@pytest.fixture(scope="module")
def native_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("writeback")
    result = _run(root / "results", [*CAPABLE, "jpegxl", "png"])
    exported = export_run(root / "results", root / "dicom")
    return result, exported


@pytest.fixture(autouse=True)
def strict_reading():
    before = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.RAISE
    yield
    pydicom.config.settings.reading_validation_mode = before


def _row(rows, path: Path):
    codec, setting = path.parent.name.split("_", 1)
    match = rows[(rows.codec == codec) & (rows.setting == setting)
                 & (rows.image_id == path.stem)]
    assert len(match) == 1, path
    return match.iloc[0]


def _check_file(path: Path, row, expected_pixels: np.ndarray | None = None) -> pydicom.Dataset:
    ds = pydicom.dcmread(path)  # reading_validation_mode RAISE: invalid values raise
    validate_file_meta(ds.file_meta, enforce_standard=True)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    n = int(row.bytes)
    assert hashlib.sha256(frame[:n]).hexdigest() == row.stream_sha256, path
    assert frame[n:] in (b"", b"\0"), path  # only the even-length pad follows
    decoded = get_codec(row.codec).decode(frame[:n])  # what medbench scored
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if syntax in DCT_JPEG:
        # libjpeg (pydicom's plugin) and libjpeg-turbo (medbench) round the inverse DCT
        # differently, within ISO 10918-2's tolerance; Pillow is libjpeg-turbo: exact.
        diff = np.abs(ds.pixel_array.astype(int) - decoded.astype(int))
        assert diff.max() <= 1, path
        if syntax == "1.2.840.10008.1.2.4.50":
            from pydicom.pixels import pixel_array
            np.testing.assert_array_equal(pixel_array(ds, decoding_plugin="pillow"), decoded)
    else:
        np.testing.assert_array_equal(ds.pixel_array, decoded, err_msg=str(path))
    if expected_pixels is not None:
        np.testing.assert_array_equal(ds.pixel_array, expected_pixels, err_msg=str(path))
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    bits = 12 if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51" else row.bit_depth
    assert ds.BitsStored == bits and ds.HighBit == bits - 1
    assert ds.file_meta.TransferSyntaxUID == get_codec(row.codec).dicom_syntax(
        row.setting, int(row.bit_depth))
    return ds


def test_every_written_file_decodes_to_the_scored_pixels_with_the_measured_stream(
        native_export):
    result, exported = native_export
    rows = result.rows
    assert exported.written
    images = {r.image_id: r for r in get_dataset("sample").records()}
    seen = set()
    for path in exported.written:
        row = _row(rows, path)
        lossless = row.setting == "lossless"
        pixels = get_dataset("sample").load(images[row.image_id]).pixels if lossless else None
        ds = _check_file(path, row, pixels)
        seen.add((row.codec, row.setting, int(row.bit_depth)))
        # the source's header, marked derived, with a new instance
        source = pydicom.dcmread(pydicom.data.get_testdata_file(
            images[row.image_id].meta["file"]), stop_before_pixels=True)
        assert ds.PatientID == source.PatientID and ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SOPInstanceUID != source.SOPInstanceUID
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "MONOCHROME1" in ds.DerivationDescription and "medbench" in ds.DerivationDescription
        if lossless:
            assert "LossyImageCompression" not in ds
        else:
            assert ds.LossyImageCompression == "01"
            assert ds.LossyImageCompressionMethod == LOSSY_METHODS[row.codec]
            assert float(ds.LossyImageCompressionRatio) == pytest.approx(row.ratio, rel=1e-3)
    for codec, lossy in CAPABLE.items():
        for setting in (lossy, "lossless"):
            assert any(c == codec and s == setting for c, s, _ in seen), (codec, setting)
    assert {b for _, _, b in seen} == {10, 15}  # both source depths, true Bits Stored


def test_jpeg12_at_ten_bits_is_the_extended_syntax(native_export):
    _, exported = native_export
    syntaxes = {str(pydicom.dcmread(p).file_meta.TransferSyntaxUID)
                for p in exported.written if p.parent.name.startswith("jpeg12_q=")}
    assert syntaxes == {"1.2.840.10008.1.2.4.51"}
    ds = pydicom.dcmread(next(p for p in exported.written if p.parent.name == "jpeg12_q=50"))
    assert ds.BitsStored == 12 and "10-bit image is coded as 12-bit" in ds.DerivationDescription


def test_reference_rle_is_the_coded_image(native_export):
    _, exported = native_export
    images = {r.image_id: r for r in get_dataset("sample").records()}
    assert len(exported.references) == 2
    for path in exported.references:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        np.testing.assert_array_equal(ds.pixel_array,
                                      get_dataset("sample").load(images[path.stem]).pixels)


def test_codecs_without_a_dicom_syntax_are_listed_as_skipped(native_export):
    _, exported = native_export
    assert any(n.startswith("png lossless") and "no DICOM transfer syntax" in n
               for n in exported.skipped)
    assert any(n.startswith("jpegxl") for n in exported.skipped)  # pydicom 3.0 lacks JXL
    with open(exported.index, newline="") as f:
        entries = list(csv.DictReader(f))
    statuses = {(e["codec"], e["status"]) for e in entries}
    assert ("png", "skipped") in statuses and ("jpeg2000", "written") in statuses
    assert not any(p.parent.name.startswith(("png", "jpegxl")) for p in exported.written)


def test_jpeg_baseline_at_eight_bits(tmp_path):
    result = _run(tmp_path / "results", ["jpeg", "jpeg12"], bit_depth="8")
    exported = export_run(tmp_path / "results", tmp_path / "dicom", codec="jpeg",
                          setting="q=50")
    assert len(exported.written) == 2
    for path in exported.written:
        ds = _check_file(path, _row(result.rows, path))
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    lossless = export_run(tmp_path / "results", tmp_path / "sv1", codec="jpeg12",
                          setting="lossless")
    for path in lossless.written:
        ds = _check_file(path, _row(result.rows, path))
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"


def test_png_source_gets_a_secondary_capture_header(tmp_path):
    import imagecodecs

    folder = tmp_path / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        pixels = (np.add.outer(np.arange(64), np.arange(64)) * 2
                  + rng.integers(0, 8, (64, 64))).astype(np.uint8)
        (folder / f"img{i}.png").write_bytes(imagecodecs.png_encode(pixels))
    config = RunConfig(codecs=["jpeg2000", "jpegls"], datasets=[f"folder:{folder}"],
                       protocol="native", split="all", repeats=0, workers=1, use_cache=False)
    result = run(config, tmp_path / "results")
    exported = export_run(tmp_path / "results", tmp_path / "dicom", codec="jpegls")
    assert exported.written
    for path in exported.written:
        ds = _check_file(path, _row(result.rows, path))
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert ds.ConversionType == "WSD" and ds.Modality == "OT"


def test_run_write_dicom_writes_the_run_s_files(tmp_path):
    from click.testing import CliRunner

    from medbench.cli import main

    out = tmp_path / "dicom"
    cli = CliRunner().invoke(main, [
        "run", "--codecs", "jpegls", "--protocol", "native", "--limit", "1", "--repeats", "0",
        "--workers", "1", "--no-cache", "--no-progress", "--no-report",
        "--out", str(tmp_path / "results"), "--write-dicom", str(out)])
    assert cli.exit_code == 0, cli.output
    assert len(list(out.glob("sample/jpegls_*/*.dcm"))) == 6
    assert (out / "index.csv").is_file()


def test_run_write_dicom_with_target_rows(tmp_path):
    """``run --target --write-dicom``: a rate-matched row is re-coded at the setting its
    search chose on that image (its ``knob``), and the file holds the measured stream."""
    from click.testing import CliRunner

    from medbench.cli import main

    out = tmp_path / "dicom"
    cli = CliRunner().invoke(main, [
        "run", "--codecs", "jpegls,jpeg2000,png", "--protocol", "native", "--limit", "2",
        "--repeats", "0", "--workers", "1", "--no-cache", "--no-progress", "--no-report",
        "--target", "ratio=10", "--out", str(tmp_path / "results"), "--write-dicom", str(out)])
    assert cli.exit_code == 0, cli.output
    rows = pd.read_csv(tmp_path / "results" / "results.csv")
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    targets = rows[(rows.setting == "target:ratio=10") & (rows.codec != "png")]
    assert len(targets) == 4 and (targets.status == "ok").all()
    series = {}
    for row in targets.itertuples():
        path = out / "sample" / f"{row.codec}_target_ratio=10" / f"{row.image_id}.dcm"
        ds = _check_target_file(path, row)
        assert f"{row.codec} target:ratio=10 at {row.knob} under" in ds.DerivationDescription
        assert ds.SeriesDescription == f"medbench {row.codec} target:ratio=10"
        series.setdefault(row.codec, set()).add(ds.SeriesInstanceUID)
        entry = index[(index.codec == row.codec) & (index.image_id == row.image_id)
                      & (index.setting == "target:ratio=10")]
        assert list(entry.status) == ["written"] and list(entry.knob) == [row.knob]
    assert all(len(uids) == 1 for uids in series.values())  # one series per cell
    png = index[(index.codec == "png") & (index.setting == "target:ratio=10")]
    assert set(png.status) == {"skipped"} and png.note.str.contains("no DICOM").all()


def _check_target_file(path: Path, row) -> pydicom.Dataset:
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    n = int(row.bytes)
    assert hashlib.sha256(frame[:n]).hexdigest() == row.stream_sha256, path
    codec = get_codec(row.codec)
    np.testing.assert_array_equal(ds.pixel_array, codec.decode(frame[:n]), err_msg=str(path))
    assert ds.file_meta.TransferSyntaxUID == codec.dicom_syntax(row.knob, int(row.bit_depth))
    assert ds.LossyImageCompression == "01"
    return ds
