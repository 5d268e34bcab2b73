"""Hostile region inputs: masks and CLNDAT lines that cannot be used give a note, never a
crash nor a silently missing region."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.regions import mask_from_dir, region_mask
from medbench.datasets.base import Record
from medbench.datasets.jsrt import nodule_region, parse_clinical
from tests.fixture_formats import write_png


def _record(image_id: str) -> Record:
    return Record(image_id, image_id, "nowhere", {})


def test_a_mask_above_the_pixel_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    write_png(tmp_path / "a.png", np.full((100, 100), 255, np.uint8))
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "4096")
    region = mask_from_dir(tmp_path, _record("a"), (100, 100))
    assert region.mask is None and "refused" in region.note
    assert "MEDBENCH_MAX_PIXELS" in region.note


@pytest.mark.parametrize("cut", [8, 40, 60])
def test_a_truncated_mask_is_refused(tmp_path, cut):
    write_png(tmp_path / "a.png", np.full((32, 32), 255, np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[:cut])
    region = mask_from_dir(tmp_path, _record("a"), (32, 32))
    assert region.mask is None and region.note.startswith("mask a.png refused: ")


def test_a_colour_mask_is_used_when_grey_or_refused_with_a_note(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[4:8, 4:8] = (255, 0, 0)  # a red region: not grey
    write_png(tmp_path / "a.png", rgb)
    region = mask_from_dir(tmp_path, _record("a"), (16, 16))
    assert (region.mask is None) == (region.note is not None)


def test_a_mask_with_two_region_values_is_refused(tmp_path):
    labels = np.zeros((16, 16), np.uint8)
    labels[:4], labels[-4:] = 1, 2  # a label map (two lungs), not a binary mask
    write_png(tmp_path / "a.png", labels)
    note = mask_from_dir(tmp_path, _record("a"), (16, 16)).note
    assert "not binary: it holds 0 and the values 1..2" in note


@pytest.mark.parametrize("x,y", [("-5", "700"), ("700", "2048"), ("1e9", "3")])
def test_clndat_coordinates_outside_the_film_are_reported(x, y):
    row = f"JPCLN009.IMG\t3\t20\t50\tmale\t{x}\t{y}\tbenign\tr.upper lobe\tgranuloma"
    meta = nodule_region(parse_clinical(row)["JPCLN009"])
    region = region_mask(meta, (256, 256))
    assert region.mask is None and "outside the 2048x2048 image" in region.note


@pytest.mark.parametrize("row", [
    "JPCLN009.IMG\t3\t20\t50\tmale\tleft\ttop\tbenign\tx\ty",  # not numbers
    "JPCLN009.IMG\t3\t0\t50\tmale\t700\t700\tbenign\tx\ty",  # size 0
    "JPCLN009.IMG",  # a bare name
    "JPCLN009.IMG\t3\tnan\t50\tmale\t700\t700\tbenign\tx\ty",  # parses as a float
    "JPCLN009.IMG\t3\t20\t50\tmale\tinf\t700\tbenign\tx\ty",
])
def test_clndat_lines_without_a_usable_nodule_give_a_note(row):
    meta = nodule_region(parse_clinical(row)["JPCLN009"])
    region = region_mask(meta, (256, 256))
    assert region.mask is None and "no nodule position and size" in region.note


def test_a_disc_without_a_usable_diameter_is_reported():
    meta = {"roi_label": "nodule", "roi_discs": ((10.0, 10.0, float("nan")),),
            "roi_shape": (64, 64)}
    region = region_mask(meta, (64, 64))
    assert region.mask is None and "diameter nan" in region.note
