"""Pixel spacing, the lung-field rule and the choice of sites."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from medbench.benchmark.observers import sites
from medbench.benchmark.observers.sites import SiteSkip, choose, image_rng, lung_rule
from tests.chest_phantom import chest_phantom, lung_mask


# -- spacing -----------------------------------------------------------------------------------
def test_recorded_spacing_is_scaled_by_the_protocols_resize():
    meta = {"spacing_row_mm": 0.2, "spacing_col_mm": 0.1, "spacing_source": "DICOM"}
    spacing = sites.prepared_spacing(meta, (2000, 1000), (250, 250))
    assert spacing.row_mm == pytest.approx(1.6) and spacing.col_mm == pytest.approx(0.4)
    assert "DICOM" in spacing.source and "scaled from 1000x2000 to 250x250" in spacing.source


def test_a_chest_without_spacing_is_assumed_43_cm_wide_and_says_so():
    spacing = sites.prepared_spacing({"body_part": "CHEST"}, (1024, 1024), (256, 256))
    assert spacing.col_mm == pytest.approx(430 / 256) and spacing.row_mm == spacing.col_mm
    assert "ASSUMED" in spacing.source and "430 mm" in spacing.source
    tall = sites.prepared_spacing({}, (2000, 1000), (256, 256))  # body part not recorded
    assert tall.row_mm == pytest.approx(0.43 * 2000 / 256)


@pytest.mark.parametrize("meta, reason", [
    ({"body_part": "HAND"}, "body part is HAND"),
    ({"body_part": "CHEST", "tile": "320x320 tile of RG1_UNCR.dcm"}, "tile"),
    ({"body_part": "CHEST", "view": "LL"}, "lateral"),
])
def test_images_that_are_not_whole_frontal_chest_films_get_no_assumption(meta, reason):
    with pytest.raises(SiteSkip, match=reason):
        sites.prepared_spacing(meta, (512, 512), (256, 256))


def test_unusable_recorded_spacing_is_refused():
    with pytest.raises(SiteSkip, match="not usable"):
        sites.prepared_spacing({"spacing_row_mm": 0.0, "spacing_col_mm": 0.1}, (8, 8), (8, 8))


# -- lung fields --------------------------------------------------------------------------------
def test_the_lung_rule_finds_the_lungs_of_a_chest_phantom_and_leaves_the_air_out():
    image = chest_phantom(256, seed=1)
    found = lung_rule(image)
    lungs = lung_mask(256)
    assert found.sum() > 0.5 * lungs.sum()
    assert (found & lungs).sum() > 0.9 * found.sum()
    air = (image < 40) & ~lungs
    deep = binary_erosion(air, iterations=8)  # air, not the body's blurred edge
    assert deep.sum() > 5000 and not (found & deep).any()
    halves = [(3, 3), (5, 5), (7, 7)]
    chosen, _ = choose(found, halves, 4, image_rng(0, "phantom", "1"))
    assert len(chosen) == 12
    for _site, rows, cols in rois(chosen, halves):
        assert not air[rows, cols].any()  # no region of interest reaches the air


# -- sites ---------------------------------------------------------------------------------------
def rois(chosen, halves):
    for site in chosen:
        h, k = halves[site.condition]
        yield site, slice(site.row - h, site.row + h + 1), slice(site.col - k, site.col + k + 1)


def test_sites_lie_in_the_field_away_from_the_edge_and_never_overlap():
    field = np.zeros((200, 200), dtype=bool)
    field[:, :120] = True  # touches the top, bottom and left edges
    halves = [(4, 4), (6, 6), (9, 9)]
    chosen, counts = choose(field, halves, 6, image_rng(0, "d", "x"))
    assert counts == [6, 6, 6]
    taken = np.zeros(field.shape, dtype=int)
    border = int(np.ceil(sites.BORDER_FRACTION * 200))
    for _site, rows, cols in rois(chosen, halves):
        assert field[rows, cols].all()
        assert rows.start >= border and cols.start >= border and rows.stop <= 200 - border
        taken[rows, cols] += 1
    assert taken.max() == 1


def test_sites_are_reproducible_by_seed_and_image():
    field = np.ones((128, 128), dtype=bool)
    halves = [(3, 3), (5, 5)]
    first = choose(field, halves, 4, image_rng(7, "nih", "a"))[0]
    assert choose(field, halves, 4, image_rng(7, "nih", "a"))[0] == first
    assert choose(field, halves, 4, image_rng(8, "nih", "a"))[0] != first
    assert choose(field, halves, 4, image_rng(7, "nih", "b"))[0] != first


def test_a_small_field_shorts_every_condition_alike_and_says_how_many_fit():
    field = np.zeros((100, 100), dtype=bool)
    field[30:70, 30:70] = True
    chosen, counts = choose(field, [(5, 5), (5, 5), (5, 5)], 10, image_rng(0, "d", "x"))
    assert max(counts) - min(counts) <= 1 and sum(counts) == len(chosen) < 30
    none, nothing = choose(np.zeros((50, 50), dtype=bool), [(3, 3)], 2, image_rng(0, "d", "y"))
    assert none == [] and nothing == [0]
