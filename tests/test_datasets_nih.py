"""The NIH ChestX-ray14 reader: layouts as shipped, patient groups, RGBA, Data_Entry."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.datasets import get_dataset
from medbench.errors import ImageReadError
from tests.fixture_formats import picture, write_nih_data_entry, write_png


@pytest.mark.parametrize("layout", ["images", "images_001/images", "."])
def test_layouts_as_nih_ships_them(tmp_path, layout):
    folder = tmp_path / "nih" / layout
    write_png(folder / "00000003_000.png", picture((32, 32), 8))
    write_png(folder / "00000003_001.png", picture((32, 32), 8, 1))
    records = get_dataset("nih", tmp_path).records()
    assert [r.image_id for r in records] == ["00000003_000", "00000003_001"]
    assert {r.group for r in records} == {"00000003"}


def test_rgba_grey_is_read_as_grey_and_colour_refused(tmp_path):
    folder = tmp_path / "nih" / "images"
    grey = picture((32, 32), 8)
    write_png(folder / "00000004_000.png", np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    colour = np.dstack([grey, grey[::-1], grey, np.full_like(grey, 255)])
    write_png(folder / "00000004_001.png", colour)
    dataset = get_dataset("nih", tmp_path)
    first, second = dataset.records()
    image = dataset.load(first)
    assert image.bit_depth == 8 and image.meta["stored_as"] == "RGBA"
    np.testing.assert_array_equal(image.pixels, grey)
    with pytest.raises(ImageReadError, match="colour PNG"):
        dataset.load(second)


def test_data_entry_adds_findings_age_sex_view(tmp_path):
    write_png(tmp_path / "nih" / "images" / "00000005_000.png", picture((32, 32), 8))
    write_png(tmp_path / "nih" / "images" / "00000005_001.png", picture((32, 32), 8, 1))
    write_png(tmp_path / "nih" / "images" / "xray.png", picture((32, 32), 8, 2))
    write_nih_data_entry(tmp_path / "nih" / "Data_Entry_2017.csv",
                         [("00000005_000.png", "Effusion|Mass", 0, "060Y", "F", "PA")])
    (tmp_path / "nih" / "BBox_List_2017.csv").write_text("Image Index\n")
    dataset = get_dataset("nih", tmp_path)
    meta = dataset.records()[0].meta
    assert (meta["findings"], meta["age"], meta["sex"], meta["view"]) == (
        "Effusion; Mass", 60, "F", "PA")
    assert meta["patient_id"] == "00000005" and meta["follow_up"] == 0
    assert [s.source.rsplit("/", 1)[-1] for s in dataset.skipped] == ["xray.png"]
    assert "patient is unknown" in dataset.skipped[0].reason
