"""``folder:PATH``: any tree of PNG, JPEG, TIFF and DICOM files."""

from __future__ import annotations

import pytest

from medbench.datasets import get_dataset
from medbench.errors import DatasetError
from tests.fixture_formats import picture, write_dicom, write_jpeg, write_png, write_tiff


def test_any_tree_of_images(tmp_path):
    write_png(tmp_path / "a" / "x.png", picture((16, 16), 8))
    write_jpeg(tmp_path / "a" / "y.jpeg", picture((16, 16), 8))
    write_tiff(tmp_path / "b" / "z.tif", picture((16, 16), 16))
    write_dicom(tmp_path / "b" / "c" / "w.dcm", picture((16, 16), 12))
    write_dicom(tmp_path / "b" / "IM0001", picture((16, 16), 12))  # DICOM without a suffix
    (tmp_path / "b" / "notes.txt").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    dataset = get_dataset(f"folder:{tmp_path}")
    records = dataset.records()
    assert [r.image_id for r in records] == ["a_x", "a_y", "b_IM0001", "b_c_w", "b_z"]
    assert all(r.group == r.image_id for r in records)
    bits = {r.image_id: dataset.load(r).bit_depth for r in records}
    assert bits == {"a_x": 8, "a_y": 8, "b_IM0001": 12, "b_c_w": 12, "b_z": 16}
    skipped = sorted(s.reason for s in dataset.skipped)
    assert skipped == ["hidden file", "not an image file (expected PNG, JPEG, TIFF or DICOM files)"]


def test_folder_needs_an_existing_path(tmp_path):
    with pytest.raises(DatasetError, match="needs a path"):
        get_dataset("folder").records()
    with pytest.raises(DatasetError, match="is not a folder"):
        get_dataset(f"folder:{tmp_path / 'missing'}").records()
