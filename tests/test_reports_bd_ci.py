"""BD values with intervals: how much Bjøntegaard's figure moves with the images."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medbench.reports.bd import bd_pair, bd_table
from medbench.reports.bd_ci import bd_intervals, bd_values
from medbench.reports.curves import curves


def test_bd_values_equal_the_bjontegaard_package():
    """The bootstrap's deltas are the package's (pchip, exact integration), to 1e-9."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        ar, ap = np.sort(rng.uniform(0.02, 2, 5)), np.sort(rng.uniform(25, 55, 5))
        tr, tp = np.sort(rng.uniform(0.02, 2, 4)), np.sort(rng.uniform(25, 55, 4))
        for ours, theirs in zip(bd_values(ar, ap, tr, tp), bd_pair(ar, ap, tr, tp)):
            assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(
                theirs, abs=1e-9)


def _rows(images: int, gain_db: float, spread: float, seed: int = 0,
          groups: int | None = None) -> pd.DataFrame:
    """jpeg2000 and a test codec ``gain_db`` better on average, ``spread`` dB per image."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(gain_db, spread, images)
    rows = []
    for i in range(images):
        for k, bpp in enumerate((0.1, 0.2, 0.4, 0.8)):
            base = 30 + 10 * math.log10(bpp / 0.1) + (i % 5)
            for codec, psnr in (("jpeg2000", base), ("test", base + effect[i])):
                rows.append({"dataset": "d", "image_id": f"i{i}",
                             "group_id": f"g{i % groups}" if groups else f"i{i}",
                             "group_kind": "patient", "codec": codec, "setting": f"s{k}",
                             "setting_rank": k, "status": "ok", "codec_kind": "classical",
                             "train_dataset": None, "bpp": bpp, "psnr": psnr,
                             "ms_ssim": 0.99, "mse": 1.0, "bit_depth": 8})
    return pd.DataFrame(rows)


def _line(rows: pd.DataFrame) -> pd.Series:
    table = bd_intervals(rows, bd_table(curves(rows)))
    return table.set_index("codec").loc["test"]


def test_the_interval_holds_the_estimate_and_shrinks_with_more_images():
    few, many = _line(_rows(12, 0.5, 1.0)), _line(_rows(120, 0.5, 1.0))
    for line in (few, many):
        assert line["bd_psnr_low"] < line["bd_psnr"] < line["bd_psnr_high"]
        assert line["bd_rate_psnr_low"] < line["bd_rate_psnr"] < line["bd_rate_psnr_high"]
        assert line["bd_ci_method"] == "bootstrap (500 resamples of 12 patients, percentile)" \
            or "120 patients" in line["bd_ci_method"]
    assert (many["bd_psnr_high"] - many["bd_psnr_low"]) < \
        0.6 * (few["bd_psnr_high"] - few["bd_psnr_low"])
    assert many["bd_psnr_low"] > 0.2 and many["bd_psnr_high"] < 0.8  # around +0.5 dB


def test_identical_per_image_gains_give_a_narrow_interval():
    line = _line(_rows(12, 0.5, 0.0))
    assert line["bd_psnr_high"] - line["bd_psnr_low"] < 1e-6
    assert line["bd_psnr"] == pytest.approx(0.5, abs=1e-9)


def test_too_few_groups_give_no_interval_and_say_why():
    line = _line(_rows(12, 0.5, 1.0, groups=3))
    assert math.isnan(line["bd_psnr_low"]) and not math.isnan(line["bd_psnr"])
    assert line["bd_ci_method"] == "none: only 3 patients (a bootstrap needs at least 10)"


def test_the_interval_is_reproducible():
    rows = _rows(20, 0.5, 1.0)
    assert _line(rows)["bd_psnr_low"] == _line(rows)["bd_psnr_low"]
