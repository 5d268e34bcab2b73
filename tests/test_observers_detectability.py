"""The observers against theory, on white Gaussian noise of known variance.

For a known signal ``s`` in white Gaussian noise of standard deviation ``σ`` per pixel
(independent noise in the signal-present and signal-absent images), the ideal observer is
the matched filter and ``d' = ‖s‖/σ`` (Barrett & Myers 2004, §13.2.8); a CHO reaches
``sqrt(captured)·‖s‖/σ`` where ``captured`` is the share of the signal's energy in its
channels' span (§13.2.9), and an NPWE template ``w`` gives ``(w·s) / (σ ‖w‖)``. Estimates
from ``N`` signal-present and ``N`` signal-absent images have a sampling standard error
of about ``sqrt(2/N + d'²/(4N))`` (normal statistics, equal variances): every check
below allows 3 of those, and the seeds are fixed, so no test is flaky.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from medbench.benchmark.observers import detectability as det
from medbench.benchmark.observers import templates
from medbench.benchmark.observers.nodules import Spacing, stamp

SPACING = Spacing(0.5, 0.5, "test")
N = 1500  # signal-present and signal-absent images each
SIGMA = 10.0


def roi_signal(diameter_mm: float = 8.0, amplitude: float = 4.0, half: int = 20) -> np.ndarray:
    """A projected-sphere nodule centred on a (2·half+1)² ROI."""
    patch = stamp(diameter_mm, amplitude, SPACING)
    roi = np.zeros((2 * half + 1, 2 * half + 1))
    top = half - patch.shape[0] // 2
    roi[top:top + patch.shape[0], top:top + patch.shape[1]] = patch
    return roi


def noisy(signal: np.ndarray, sigma: float, seed: int, n: int = N, baseline: float = 50.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` signal-present and ``n`` signal-absent ROIs (flattened) in white noise on a
    uniform ``baseline`` (which no observer may mistake for the signal)."""
    rng = np.random.default_rng(seed)
    flat = signal.ravel()
    present = baseline + flat + rng.normal(0, sigma, (n, flat.size))
    absent = baseline + rng.normal(0, sigma, (n, flat.size))
    return present, absent


def matched_dprime(signal, present, absent) -> float:
    template = templates.npwe_template(signal, SPACING, eye=None).ravel()
    return det.dprime(present @ template, absent @ template)


def cho_dprime(signal, present, absent, width_mm) -> float:
    half = signal.shape[0] // 2
    channels = templates.lg_channels(width_mm, (half, half), SPACING)
    n = present.shape[0]
    groups = np.arange(n)  # every image its own group
    sites = det.Sites(groups, groups % 2, present @ channels.T, absent @ channels.T)
    return float(det.point(sites)[0][0])


def allowed(dprime: float, n: int = N) -> float:
    return 3 * det.dprime_se(dprime, n, n)


def test_the_matched_filter_reaches_the_signal_norm_over_sigma():
    signal = roi_signal()
    ideal = np.linalg.norm(signal) / SIGMA
    measured = matched_dprime(signal, *noisy(signal, SIGMA, seed=1))
    assert 1.5 < ideal < 4  # a useful range for the check
    assert measured == pytest.approx(ideal, abs=allowed(ideal))


def test_the_cho_with_matched_channels_approaches_the_ideal_from_below():
    signal = roi_signal()
    ideal = np.linalg.norm(signal) / SIGMA
    width, captured = templates.matched_width(signal, 4.0, (20, 20), SPACING)
    theory = np.sqrt(captured) * ideal
    assert captured >= templates.CAPTURED  # matched channels: within 0.5 % of ideal
    assert theory <= ideal
    measured = cho_dprime(signal, *noisy(signal, SIGMA, seed=2), width)
    assert measured == pytest.approx(theory, abs=allowed(theory))
    assert measured <= ideal + allowed(ideal)


def test_channels_of_the_wrong_width_lose_detectability_as_theory_says():
    signal = roi_signal()
    ideal = np.linalg.norm(signal) / SIGMA
    half = signal.shape[0] // 2
    narrow = templates.lg_channels(1.0, (half, half), SPACING)  # a quarter of the radius
    theory = np.sqrt(templates.captured(signal, narrow)) * ideal
    assert theory < 0.8 * ideal
    measured = cho_dprime(signal, *noisy(signal, SIGMA, seed=3), 1.0)
    assert measured == pytest.approx(theory, abs=allowed(theory))


def test_the_npwe_reaches_its_theoretical_dprime():
    signal = roi_signal()
    template = templates.npwe_template(signal, SPACING).ravel()
    theory = template @ signal.ravel() / (SIGMA * np.linalg.norm(template))
    present, absent = noisy(signal, SIGMA, seed=4)
    measured = det.dprime(present @ template, absent @ template)
    assert theory < np.linalg.norm(signal) / SIGMA  # the eye filter costs detectability
    assert measured == pytest.approx(theory, abs=allowed(theory))


@pytest.mark.parametrize("observer", ["matched", "cho"])
def test_dprime_grows_with_contrast_and_with_size(observer):
    measured = {}
    for diameter in (4.0, 8.0):
        for amplitude in (2.0, 4.0):
            signal = roi_signal(diameter, amplitude)
            data = noisy(signal, SIGMA, seed=int(10 * diameter + amplitude))
            if observer == "matched":
                measured[diameter, amplitude] = matched_dprime(signal, *data)
            else:
                width, _ = templates.matched_width(signal, diameter / 2, (20, 20), SPACING)
                measured[diameter, amplitude] = cho_dprime(signal, *data, width)
    assert measured[4.0, 2.0] < measured[4.0, 4.0] and measured[8.0, 2.0] < measured[8.0, 4.0]
    assert measured[4.0, 2.0] < measured[8.0, 2.0] and measured[4.0, 4.0] < measured[8.0, 4.0]
    # d' is linear in contrast: twice the amplitude, twice the d'
    ratio = measured[8.0, 4.0] / measured[8.0, 2.0]
    assert ratio == pytest.approx(2.0, abs=0.25)


def test_added_white_noise_lowers_dprime_by_the_predicted_amount():
    signal = roi_signal()
    present, absent = noisy(signal, SIGMA, seed=5)
    added = 15.0
    rng = np.random.default_rng(6)
    present = present + rng.normal(0, added, present.shape)
    absent = absent + rng.normal(0, added, absent.shape)
    theory = np.linalg.norm(signal) / np.sqrt(SIGMA**2 + added**2)
    assert matched_dprime(signal, present, absent) == pytest.approx(theory,
                                                                   abs=allowed(theory))


def test_the_cho_is_tested_on_patients_it_was_not_trained_on():
    # No signal at all: a CHO tested on its own training sites would still find one
    # (resubstitution bias, about sqrt(J (1/n_p + 1/n_a)) here); cross-validated, it does not.
    signal = np.zeros((21, 21))
    channels = templates.lg_channels(2.0, (10, 10), SPACING)
    found = []
    for seed in range(20):
        present, absent = noisy(signal, SIGMA, seed=100 + seed, n=24)
        groups = np.arange(24)
        sites = det.Sites(groups, groups % 2, present @ channels.T, absent @ channels.T)
        found.append(det.point(sites)[0][0])
    assert np.mean(found) < 0.2


def test_dprime_and_auc_match_independent_formulas():
    rng = np.random.default_rng(7)
    present, absent = rng.normal(1.0, 2.0, 50), rng.normal(0.0, 1.0, 70)
    expected = (present.mean() - absent.mean()) / np.sqrt(
        (present.var(ddof=1) + absent.var(ddof=1)) / 2)
    assert det.dprime(present, absent) == pytest.approx(expected, rel=1e-12)
    u = mannwhitneyu(present, absent, alternative="two-sided").statistic
    assert det.auc(present, absent) == pytest.approx(u / (50 * 70), rel=1e-12)
    tied = np.array([1.0, 2.0, 2.0])
    assert det.auc(tied, np.array([2.0])) == pytest.approx(
        mannwhitneyu(tied, [2.0]).statistic / 3)


def test_halves_keep_groups_whole_balanced_and_seeded():
    groups = [f"p{i}" for i in range(11)]
    first = det.halves(groups, seed=3)
    assert det.halves(list(reversed(groups)), seed=3) == first  # not the order given
    assert sorted(first.values()).count(0) in (5, 6)
    assert det.halves(groups, seed=4) != first


def test_the_cluster_bootstrap_draws_whole_groups_within_each_half():
    group = np.repeat(np.arange(6), 3)  # 6 groups of 3 sites
    sites = det.Sites(group, group % 2, np.zeros(18), np.zeros(18))
    weight = det.replicate_weights(sites, 200, seed=1)
    assert weight.shape == (200, 6)
    for half in (0, 1):
        assert (weight[:, np.arange(6) % 2 == half].sum(axis=1) == 3).all()
    assert not np.array_equal(weight, det.replicate_weights(sites, 200, seed=2))


def test_identical_data_give_identical_bootstrap_dprimes_exactly():
    signal = roi_signal(4.0, half=10)
    present, absent = noisy(signal, SIGMA, seed=8, n=60)
    channels = templates.lg_channels(2.0, (10, 10), SPACING)
    group = np.arange(60) // 3
    sites = det.Sites(group, group % 2, present @ channels.T, absent @ channels.T)
    copy = det.Sites(group.copy(), group % 2, (present @ channels.T).copy(),
                     (absent @ channels.T).copy())
    weight = det.replicate_weights(sites, 100, seed=0)
    assert np.array_equal(det.bootstrap_dprime(sites, weight),
                          det.bootstrap_dprime(copy, weight))


def test_a_bias_corrected_interval_is_the_percentile_interval_without_bias():
    values = np.random.default_rng(9).normal(0, 1, 20001)
    low, high = det.bc_interval(values, float(np.median(values)))
    assert low == pytest.approx(np.percentile(values, 2.5), abs=1e-9)
    assert high == pytest.approx(np.percentile(values, 97.5), abs=1e-9)
    shifted_low, _ = det.bc_interval(values, 1.0)  # replicates sit below the estimate
    assert shifted_low > low
