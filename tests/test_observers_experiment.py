"""One image's nodule experiment: options, sites with nodules, skips with reasons."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.observers.experiment import (
    DEFAULT_CONTRASTS,
    ObserverSpec,
    parse_spec,
    plan_image,
)
from medbench.errors import MedbenchError
from medbench.image import Image
from tests.chest_phantom import chest_phantom, lung_mask

CHEST = {"body_part": "CHEST"}


def phantom(size=256, seed=0, image_id="p0"):
    return Image(chest_phantom(size, seed), 8, image_id, dict(CHEST))


def plan(image, spec=None, meta=CHEST, native=None, **kwargs):
    spec = spec or ObserverSpec(sizes_mm=(6.0, 10.0), contrasts=(0.05, 0.1), per_condition=3)
    shape = native or image.pixels.shape
    return plan_image(spec, image, meta, "test", lambda: shape, **kwargs)


# -- options -------------------------------------------------------------------------------------
def test_options_parse_sorted_with_defaults():
    spec = parse_spec("nodules", "10,4", None, 2, seed=5)
    assert spec.sizes_mm == (4.0, 10.0) and spec.contrasts == DEFAULT_CONTRASTS
    assert spec.per_condition == 2 and spec.seed == 5
    assert parse_spec(None) is None


@pytest.mark.parametrize("args, message", [
    (("lesions",), "unknown --observer 'lesions'; known: nodules"),
    (("nodules", "4,x"), "'x' is not a number"),
    (("nodules", "0,4"), "diameter of 0 mm is outside"),
    (("nodules", "4,4"), "names a value twice"),
    (("nodules", None, "0.5,1.5"), "1.5 is outside (0, 1]"),
    (("nodules", None, None, 0), "at least 1"),
    ((None, "4"), "belong to --observer nodules"),
])
def test_bad_options_are_refused_naming_the_option_and_the_rule(args, message):
    with pytest.raises(MedbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(*args)


# -- an image's plan -------------------------------------------------------------------------------
def test_nodules_go_into_the_lungs_and_nowhere_else():
    image = phantom()
    result = plan(image)
    assert len(result.placed) == 12  # 2 sizes x 2 contrasts x 3 sites
    difference = result.present.pixels.astype(int) - image.pixels.astype(int)
    assert difference.min() >= 0 and difference.max() > 0
    lungs = lung_mask(256)
    assert lungs[difference > 0].mean() > 0.95  # (a blurred edge may reach past the ellipse)
    for _index, _which, row, col in result.placed:
        assert lungs[row, col]
        assert difference[row, col] > 0


def test_the_same_seed_places_the_same_nodules():
    first, second = plan(phantom()), plan(phantom())
    assert first.placed == second.placed
    assert np.array_equal(first.present.pixels, second.present.pixels)
    other = plan(phantom(), ObserverSpec(sizes_mm=(6.0, 10.0), contrasts=(0.05, 0.1),
                                         per_condition=3, seed=1))
    assert other.placed != first.placed


def test_the_original_observes_each_site_with_and_without_its_nodule():
    result = plan(phantom())
    rows = [o for o in result.original() if o.site >= 0]
    assert len(rows) == 12 and all(o.status == "ok" and o.codec == "" for o in rows)
    for o in rows:
        assert o.cho_present.shape == (6,) and o.cho_absent.shape == (6,)
        assert o.npwe_present > o.npwe_absent  # a brighter nodule raises the statistic
        assert "ASSUMED" in o.spacing_source
    same = result.observe(result.image.pixels, result.image.pixels, "c", "s")
    assert all(np.array_equal(o.cho_present, o.cho_absent) for o in same)
    # Both observers are blind to the region's mean grey level (a brighter patient).
    brighter = result.observe(result.image.pixels.astype(float) + 20,
                              result.present.pixels.astype(float) + 20, "c", "s")
    plain = result.observe(result.image.pixels, result.present.pixels, "c", "s")
    for a, b in zip(brighter, plain):
        assert np.allclose(a.cho_present, b.cho_present, atol=1e-9)
        assert a.npwe_absent == pytest.approx(b.npwe_absent, abs=1e-9)


def test_an_image_too_small_for_a_size_is_a_stated_skip():
    small = Image(chest_phantom(96, 0), 8, "small", dict(CHEST))  # 4.5 mm pixels
    result = plan(small, ObserverSpec(sizes_mm=(4.0,), contrasts=(0.1,)))
    (skip,) = result.original()
    assert skip.status == "skipped" and "4 mm nodule is 0.89 pixels across" in skip.note
    assert "too small" in skip.note and result.placed == []
    fine = {**CHEST, "spacing_row_mm": 0.2, "spacing_col_mm": 0.2}  # a 19 mm wide image
    result = plan(small, ObserverSpec(sizes_mm=(4.0, 30.0), contrasts=(0.1,)), meta=fine)
    reasons = {o.diameter_mm: o.note for o in result.original() if o.site < 0}
    assert "30 mm nodule needs a 303x303 region" in reasons[30.0]
    assert "too small" in reasons[30.0]


def test_a_film_that_is_not_a_chest_and_has_no_spacing_is_skipped_with_its_reason():
    result = plan(phantom(), meta={"body_part": "FOOT"})
    assert result.present is None and result.placed == []
    notes = {o.note for o in result.original()}
    assert len(notes) == 1 and "body part is FOOT" in notes.pop()
    assert len(result.original()) == 4  # one per condition


def test_a_saturating_contrast_is_skipped_at_that_site_never_clipped():
    pixels = chest_phantom(256, 0)
    pixels[lung_mask(256)] = 250  # white lungs: a 0.1 contrast adds 25 grey levels
    image = Image(pixels, 8, "white", dict(CHEST))
    lungs = lung_mask(256)
    result = plan(image, ObserverSpec(sizes_mm=(6.0,), contrasts=(0.1,), per_condition=3),
                  masks=True, lung=lungs)
    skipped = [o for o in result.original() if o.status == "skipped" and o.site >= 0]
    assert len(skipped) == 3 and all("saturate" in o.note for o in skipped)
    assert np.array_equal(result.present.pixels, pixels)  # nothing added, nothing clipped


def test_masks_replace_the_rule_and_a_refused_mask_skips_the_image():
    image = phantom()
    corner = np.zeros((256, 256), dtype=bool)
    corner[150:230, 150:230] = True  # soft tissue, which the rule would never choose
    result = plan(image, masks=True, lung=corner)
    assert result.placed and all(corner[row, col] for _, _, row, col in result.placed)
    refused = plan(image, masks=True, lung=None, lung_note="mask x.png refused: empty")
    assert {o.note for o in refused.original()} == {
        "no usable lung mask: mask x.png refused: empty"}


def test_a_datasets_own_nodule_is_kept_free_of_simulated_ones():
    image = phantom()
    avoid = lung_mask(256)
    avoid[:, 128:] = False  # the right lung holds a real nodule's region
    result = plan(image, avoid=avoid)
    assert result.placed and all(col > 128 for _, _, _, col in result.placed)


def test_failed_coding_gives_one_error_row_per_condition():
    result = plan(phantom())
    rows = result.failed("jpeg", "q=5", "boom")
    assert len(rows) == 4 and {o.status for o in rows} == {"error"}
    assert all(o.site == -1 and o.note == "boom" for o in rows)
    wrong = result.observe(np.zeros((10, 10)), np.zeros((10, 10)), "jpeg", "q=5")
    assert all(o.status == "error" and "differ from the image's" in o.note for o in wrong)
