"""Laguerre–Gauss channels and the NPWE eye filter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import eval_laguerre

from medbench.benchmark.observers import templates
from medbench.benchmark.observers.nodules import Spacing, stamp


def test_channels_are_the_laguerre_gauss_functions_and_orthonormal():
    spacing = Spacing(0.05, 0.05, "test")
    width = 1.0
    channels = templates.lg_channels(width, (60, 60), spacing, count=4, oversample=1)
    # Independent reference: scipy's Laguerre polynomials at a pixel 0.5 mm from the centre.
    r2 = 0.5**2
    x = 2 * math.pi * r2 / width**2
    centre = 60 * 121 + 60
    for j in range(4):
        expected = math.sqrt(2) / width * math.exp(-x / 2) * eval_laguerre(j, x)
        assert channels[j, centre + 10] / spacing.area_mm2 == pytest.approx(expected, rel=1e-9)
    # ∫ u_i u_j d²r = δ_ij: the pixel sums approximate it on a fine grid.
    gram = channels @ channels.T / spacing.area_mm2
    assert np.allclose(gram, np.eye(4), atol=1e-3)


def test_matched_channels_capture_almost_all_of_a_nodule_at_chest_spacings():
    for pixel in (0.175, 0.42, 1.68):
        spacing = Spacing(pixel, pixel, "test")
        for diameter in (4.0, 6.0, 10.0):
            patch = stamp(diameter, 1.0, spacing)
            half = max(patch.shape[0] // 2, math.ceil(diameter / pixel) + 1)
            roi = np.zeros((2 * half + 1,) * 2)
            top = half - patch.shape[0] // 2
            roi[top:top + patch.shape[0], top:top + patch.shape[0]] = patch
            width, captured = templates.matched_width(roi, diameter / 2, (half, half), spacing)
            assert captured >= templates.CAPTURED, (pixel, diameter)
            assert width == pytest.approx(diameter / 2)


def test_matched_width_searches_when_the_default_width_captures_too_little():
    spacing = Spacing(0.1, 0.1, "test")
    patch = stamp(4.0, 1.0, spacing)
    half = patch.shape[0] // 2
    width, captured = templates.matched_width(patch, 2.0, (half, half), spacing, count=2,
                                              enough=0.9999)
    default = templates.captured(patch, templates.lg_channels(2.0, (half, half), spacing, 2))
    assert captured > default and width != pytest.approx(2.0)


def test_the_eye_filter_peaks_at_four_cycles_per_degree():
    eye = templates.EyeFilter()
    mm_per_degree = eye.viewing_mm * math.pi / 180
    f = np.linspace(0.01, 3, 30000)  # cycles/mm
    peak = f[np.argmax(eye(f))] * mm_per_degree
    assert peak == pytest.approx(4.0, abs=0.01)
    assert eye(np.array([0.0]))[0] == 0.0  # no response to the mean grey level


def test_npw_is_the_signal_and_npwe_ignores_a_uniform_background():
    spacing = Spacing(0.2, 0.2, "test")
    signal = stamp(6.0, 1.0, spacing)
    assert np.array_equal(templates.npwe_template(signal, spacing, eye=None), signal)
    roi = np.zeros((301, 301))  # room for the template's negative surround
    half = signal.shape[0] // 2
    roi[150 - half:150 + half + 1, 150 - half:150 + half + 1] = signal
    template = templates.npwe_template(roi, spacing)
    assert template.shape == roi.shape
    assert abs(template.sum()) < 0.02 * np.abs(template).sum()
    assert template.min() < 0  # a band-pass template: a negative surround
    assert template[150, 150] > 0
