"""The MXID reader: one folder per body part, PNG and JPEG, body part as metadata."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.datasets import get_dataset
from medbench.errors import ImageReadError
from tests.fixture_formats import picture, write_jpeg, write_png


def test_body_parts_are_the_folder_names_as_found(tmp_path):
    root = tmp_path / "mxid"
    write_png(root / "Lung" / "001.png", picture((32, 32), 8, 1))
    write_jpeg(root / "Lung" / "002.jpg", picture((32, 32), 8, 2))
    write_png(root / "Pelvic basin" / "sub" / "001.png", picture((32, 32), 8, 3))
    write_png(root / "loose.png", picture((32, 32), 8, 4))
    dataset = get_dataset("mxid", tmp_path)
    records = {r.image_id: r for r in dataset.records()}
    assert set(records) == {"Lung_001", "Lung_002", "Pelvic-basin_sub_001"}
    assert records["Pelvic-basin_sub_001"].meta["body_part"] == "Pelvic basin"
    assert all(r.group == r.image_id for r in records.values())  # no patient ids published
    image = dataset.load(records["Lung_001"])
    assert image.bit_depth == 8 and image.meta["body_part"] == "Lung"
    np.testing.assert_array_equal(image.pixels, picture((32, 32), 8, 1))
    assert [s.reason for s in dataset.skipped] == [
        "not inside a body-part folder, so its body part is unknown"
    ]


def test_unreadable_png_is_listed_and_fails_alone_at_load(tmp_path):
    root = tmp_path / "mxid"
    write_png(root / "Hand" / "ok.png", picture((32, 32), 8))
    (root / "Hand" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    dataset = get_dataset("mxid", tmp_path)
    records = {r.image_id: r for r in dataset.records()}
    assert dataset.load(records["Hand_ok"]).height == 32
    with pytest.raises(ImageReadError, match="bad.png"):
        dataset.probe(records["Hand_bad"])
