"""The JSRT reader: raw big-endian inverted 12-bit .IMG, clinical metadata, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.datasets import get_dataset
from medbench.datasets.jsrt import IMG_BYTES, parse_clinical, read_jsrt_img
from medbench.errors import DatasetError, ImageReadError
from tests.fixture_formats import (
    CLNDAT_ROWS,
    CNNDAT_ROWS,
    jsrt_picture,
    picture,
    write_jsrt_img,
    write_png,
)


def test_img_is_read_as_12_bit_monochrome2(tmp_path):
    scene = jsrt_picture(3)
    path = write_jsrt_img(tmp_path / "JPCLN001.IMG", scene)
    raw = np.frombuffer(path.read_bytes(), dtype=">u2")
    assert raw[0] == 4095 - scene.flat[0]  # really stored inverted and big-endian
    pixels, bits, meta = read_jsrt_img(path)
    assert bits == 12 and pixels.dtype == np.uint16 and pixels.shape == (2048, 2048)
    np.testing.assert_array_equal(pixels, scene)
    assert meta["stored_inverted"] is True


@pytest.mark.parametrize(
    "size, message",
    [(0, "zero-byte"), (IMG_BYTES - 2, "truncated"), (IMG_BYTES + 512, "not a JSRT raw image")],
)
def test_wrong_size_img_is_refused(tmp_path, size, message):
    path = tmp_path / "JPCLN001.IMG"
    path.write_bytes(b"\x01" * size)
    with pytest.raises(ImageReadError, match=message):
        read_jsrt_img(path)


def test_little_endian_img_is_refused(tmp_path):
    path = tmp_path / "JPCLN001.IMG"
    path.write_bytes(np.full(2048 * 2048, 1000, dtype="<u2").tobytes())  # 0xE803 big-endian
    with pytest.raises(ImageReadError, match="more than 12 bits"):
        read_jsrt_img(path)


def test_clinical_information_layout():
    rows = parse_clinical("\r\n".join(CLNDAT_ROWS) + "\r\n")
    first = rows["JPCLN001"]
    assert first == {
        "nodule": True, "subtlety": 5, "nodule_size_mm": 15, "age": 53, "sex": "male",
        "nodule_x": 1634, "nodule_y": 692, "malignancy": "malignant",
        "location": "l.upper lobe", "diagnosis": "lung cancer",
    }
    assert rows["JPCLN003"]["age"] is None  # '?' in the file
    normal = parse_clinical("\n".join(CNNDAT_ROWS))
    assert normal["JPCNN002"] == {"nodule": False, "age": 62, "sex": "male",
                                  "diagnosis": "non-nodule"}


def test_clinical_rows_without_line_ends_still_parse():
    mashed = "".join(CLNDAT_ROWS)  # line ends lost in transit
    rows = parse_clinical(mashed)
    assert set(rows) == {"JPCLN001", "JPCLN002", "JPCLN003"}
    assert rows["JPCLN002"]["subtlety"] == 5 and rows["JPCLN002"]["malignancy"] == "benign"


def _tree(tmp_path):
    jsrt = tmp_path / "jsrt"
    write_jsrt_img(jsrt / "Nodule154images" / "JPCLN001.IMG", jsrt_picture(1))
    write_jsrt_img(jsrt / "NonNodule93images" / "JPCNN001.IMG", jsrt_picture(2))
    (jsrt / "Clinical_Information").mkdir()
    (jsrt / "Clinical_Information" / "CLNDAT_EN.txt").write_text("\n".join(CLNDAT_ROWS))
    (jsrt / "Clinical_Information" / "CNNDAT_EN.TXT").write_text("\n".join(CNNDAT_ROWS))
    return jsrt


def test_dataset_records_metadata_and_groups(tmp_path):
    _tree(tmp_path)
    dataset = get_dataset("jsrt", tmp_path)
    records = dataset.records()
    assert [r.image_id for r in records] == ["JPCLN001", "JPCNN001"]
    assert all(r.group == r.image_id for r in records)  # every image a different patient
    assert records[0].meta["subtlety"] == 5 and records[0].meta["body_part"] == "CHEST"
    assert records[1].meta["nodule"] is False
    image = dataset.load(records[0])
    assert image.bit_depth == 12 and image.meta["diagnosis"] == "lung cancer"
    assert dataset.skipped == []


def test_png_conversions_are_accepted_and_native_files_preferred(tmp_path):
    jsrt = _tree(tmp_path)
    write_png(jsrt / "png" / "JPCLN001.png", picture((64, 64), 8))  # a conversion
    write_png(jsrt / "png" / "JPCNN002.png", picture((64, 64), 8, 5))  # only as PNG
    dataset = get_dataset("jsrt", tmp_path)
    records = {r.image_id: r for r in dataset.records()}
    assert records["JPCLN001"].meta["format"] == "jsrt-img"
    assert dataset.load(records["JPCNN002"]).bit_depth == 8
    assert [s.reason for s in dataset.skipped] == [
        "a conversion of JPCLN001, whose native .IMG is used instead"
    ]


def test_bad_files_are_skipped_with_reasons(tmp_path):
    jsrt = _tree(tmp_path)
    (jsrt / "JPCLN002.IMG").write_bytes(b"")
    (jsrt / "JPCLN003.IMG").write_bytes(b"\x00" * 4096)
    (jsrt / "readme.pdf").write_bytes(b"%PDF-1.4")
    write_jsrt_img(jsrt / "scan7.IMG", jsrt_picture(0))
    dataset = get_dataset("jsrt", tmp_path)
    assert len(dataset.records()) == 2
    reasons = {s.source.rsplit("/", 1)[-1]: s.reason for s in dataset.skipped}
    assert reasons["JPCLN002.IMG"] == "zero-byte file"
    assert "truncated" in reasons["JPCLN003.IMG"]
    assert "not an image file" in reasons["readme.pdf"]
    assert "not a JSRT file name" in reasons["scan7.IMG"]


def test_missing_data_root_folder_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="needs --data-root"):
        get_dataset("jsrt", None).records()
    with pytest.raises(DatasetError, match=r"is not a folder"):
        get_dataset("jsrt", tmp_path / "nowhere").records()
    with pytest.raises(DatasetError, match=r"expects the JSRT \.IMG files .* in .*jsrt"):
        get_dataset("jsrt", tmp_path).records()
    (tmp_path / "jsrt").mkdir()
    with pytest.raises(DatasetError, match="no usable images in"):
        get_dataset("jsrt", tmp_path).records()
    (tmp_path / "jsrt" / "JPCLN001.IMG").write_bytes(b"")
    with pytest.raises(DatasetError, match="all 1 files were skipped.*zero-byte"):
        get_dataset("jsrt", tmp_path).records()


def test_jsrt_images_carry_their_pixel_spacing(tmp_path):
    meta = read_jsrt_img(write_jsrt_img(tmp_path / "JPCLN001.IMG", jsrt_picture(0)))[2]
    assert meta["spacing_row_mm"] == meta["spacing_col_mm"] == 0.175
    root = tmp_path / "root"
    write_png(root / "jsrt" / "JPCNN002.png", picture((1024, 1024), 12), sbit=12)
    dataset = get_dataset("jsrt", root)
    (record,) = dataset.records()
    image = dataset.load(record)
    assert image.meta["spacing_col_mm"] == pytest.approx(0.35)  # the whole film in 1024 px
    assert "conversion taken to hold the whole film" in image.meta["spacing_source"]
