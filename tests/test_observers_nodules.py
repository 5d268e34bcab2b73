"""Simulated nodules: the projected-sphere profile, its sampling, and its insertion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medbench.benchmark.observers.nodules import Spacing, diameter_px, insert, place, stamp

FINE = Spacing(0.1, 0.1, "test")


def test_the_profile_is_a_projected_sphere_of_the_stated_peak_and_volume():
    # Independent reference: the chord through a sphere, A·sqrt(1 - (r/R)²), integrates to
    # (2/3)·π·R²·A over the disc.
    patch = stamp(6.0, 10.0, FINE, blur_mm=0.0)
    assert patch.shape[0] % 2 == 1 and patch.shape == patch.T.shape
    centre = patch.shape[0] // 2
    assert patch[centre, centre] == pytest.approx(10.0, rel=1e-3)
    assert patch.sum() * FINE.area_mm2 == pytest.approx(2 / 3 * math.pi * 3.0**2 * 10.0,
                                                        rel=1e-3)
    r = 2.0  # mm from the centre along a row
    assert patch[centre, centre + 20] == pytest.approx(10 * math.sqrt(1 - (r / 3) ** 2),
                                                      rel=2e-2)
    assert patch[centre, centre + 31:].max() == 0.0  # nothing beyond the radius


def test_blur_keeps_the_volume_and_lowers_the_peak():
    sharp = stamp(6.0, 10.0, FINE, blur_mm=0.0)
    soft = stamp(6.0, 10.0, FINE, blur_mm=0.5)
    assert soft.sum() == pytest.approx(sharp.sum(), rel=1e-3)
    assert soft.max() < sharp.max()


def test_a_coarse_grid_integrates_over_each_pixel():
    coarse = Spacing(1.68, 1.68, "test")
    patch = stamp(4.0, 1.0, coarse, blur_mm=0.0)
    assert patch.sum() * coarse.area_mm2 == pytest.approx(2 / 3 * math.pi * 2.0**2, rel=2e-2)
    assert patch.max() < 1.0  # a pixel averages the peak with its surround


def test_anisotropic_pixels_give_an_ellipse_in_pixels():
    patch = stamp(6.0, 1.0, Spacing(0.2, 0.1, "test"), blur_mm=0.0)
    assert patch.shape[1] > patch.shape[0]
    assert diameter_px(6.0, Spacing(0.2, 0.1, "test")) == pytest.approx(30.0)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="diameter"):
        stamp(0.0, 1.0, FINE)
    with pytest.raises(ValueError, match="blur"):
        stamp(4.0, 1.0, FINE, blur_mm=-1)


def test_nodules_are_added_rounded_and_a_saturating_one_is_refused_not_clipped():
    pixels = np.full((40, 40), 100, dtype=np.uint8)
    pixels[25:40, 25:40] = 253  # a bright corner
    added = np.full((5, 5), 3.4)
    result = insert(pixels, 8, [(10, 10), (32, 32)], [added, added])
    assert result.refused[0] is None
    assert (result.pixels[8:13, 8:13] == 103).all()  # rounded to grey levels
    assert result.refused[1] is not None and "saturate" in result.refused[1]
    assert "256 > peak 255" in result.refused[1]
    assert (result.pixels[30:35, 30:35] == 253).all()  # left as it was, never clipped
    assert result.pixels.dtype == np.uint8
    untouched = result.pixels.copy()
    untouched[8:13, 8:13] = 100
    assert np.array_equal(untouched, pixels)


def test_a_patch_that_would_leave_the_image_is_refused():
    canvas = np.zeros((10, 10))
    assert place(canvas, np.zeros((3, 3)), 1, 1) == (slice(0, 3), slice(0, 3))
    with pytest.raises(ValueError, match="leaves"):
        place(canvas, np.zeros((5, 5)), 1, 1)
