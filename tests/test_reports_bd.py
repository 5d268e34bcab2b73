"""RD curves and BD-rate / BD-PSNR against JPEG 2000, on curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medbench.reports.bd import bd_table
from medbench.reports.curves import clinical_bpp, curves, envelope, interpolate_at, msssim_db

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNRS = [30.0, 33.5, 36.0, 39.5, 42.0]


def rows_for(dataset, codec, rates, psnrs, train=None, kind="classical", images=2,
             lossless_bpp=None):
    """Result rows whose per-setting means are exactly ``rates`` and ``psnrs``."""
    out = []
    settings = [(f"s{k}", r, p) for k, (r, p) in enumerate(zip(rates, psnrs))]
    if lossless_bpp is not None:
        settings.append(("lossless", lossless_bpp, math.inf))
    for rank, (setting, r, p) in enumerate(settings):
        for i in range(images):
            spread = 0.01 * (i - (images - 1) / 2)  # images differ, the mean does not
            out.append({
                "dataset": dataset, "codec": codec, "setting": setting, "setting_rank": rank,
                "image_id": f"img{i}", "status": "ok", "bit_depth": 8, "codec_kind": kind,
                "train_dataset": train, "bpp": r * (1 + spread),
                "psnr": p + spread if math.isfinite(p) else p,
                "ms_ssim": 1 - 10 ** (-p / 20) if math.isfinite(p) else 1.0,
            })
    return out


def frame(*parts):
    return pd.DataFrame([row for part in parts for row in part])


def test_a_curve_with_ten_percent_less_rate_has_bd_rate_minus_ten():
    rows = frame(rows_for("d", "jpeg2000", RATES, PSNRS),
                 rows_for("d", "other", [0.9 * r for r in RATES], PSNRS))
    bd = bd_table(curves(rows)).set_index("codec")
    assert bd.loc["other", "bd_rate_psnr"] == pytest.approx(-10.0, abs=1e-9)
    assert bd.loc["other", "bd_rate_msssim"] == pytest.approx(-10.0, abs=1e-9)
    assert bd.loc["other", "reliable"]
    assert bd.loc["other", "bd_psnr"] > 0


def test_one_db_better_everywhere_has_bd_psnr_plus_one():
    rows = frame(rows_for("d", "jpeg2000", RATES, PSNRS),
                 rows_for("d", "better", RATES, [p + 1 for p in PSNRS]))
    bd = bd_table(curves(rows)).iloc[0]
    assert bd["bd_psnr"] == pytest.approx(1.0, abs=1e-9)
    assert bd["bd_rate_psnr"] < 0
    assert bd["method"] == "pchip"


def test_little_overlap_is_marked_and_none_is_not_computed():
    little = frame(rows_for("d", "jpeg2000", RATES, PSNRS),
                   rows_for("d", "far", RATES, [p + 10 for p in PSNRS]))
    row = bd_table(curves(little)).iloc[0]
    assert not row["reliable"] and "PSNR ranges overlap" in row["note"]
    assert row["quality_overlap"] == pytest.approx(2 / 22)
    none = frame(rows_for("d", "jpeg2000", RATES, PSNRS),
                 rows_for("d", "apart", RATES, [p + 20 for p in PSNRS]))
    row = bd_table(curves(none)).iloc[0]
    assert math.isnan(row["bd_rate_psnr"]) and not row["reliable"]


def test_lossless_points_stay_out_of_curves_and_bd():
    rows = frame(rows_for("d", "jpeg2000", RATES, PSNRS, lossless_bpp=4.0),
                 rows_for("d", "other", [0.9 * r for r in RATES], PSNRS, lossless_bpp=3.5))
    by_codec = {c.codec: c for c in curves(rows)}
    assert list(by_codec["jpeg2000"].points["setting"]) == [f"s{k}" for k in range(5)]
    assert by_codec["jpeg2000"].lossless_bpp == pytest.approx(4.0)
    assert bd_table(list(by_codec.values())).iloc[0]["bd_rate_psnr"] == pytest.approx(-10.0)


def test_learned_codecs_get_one_curve_per_train_dataset_and_missing_anchor_is_said():
    rows = frame(rows_for("a", "dcae", RATES, PSNRS, train="a", kind="learned"),
                 rows_for("a", "dcae", RATES, PSNRS, train="b", kind="learned"))
    found = curves(rows)
    assert sorted(c.label for c in found) == ["dcae (train a)", "dcae (train b)"]
    bd = bd_table(found)
    assert len(bd) == 2 and (bd["note"] == "no jpeg2000 rows on a").all()


def test_too_few_points_gives_no_bd():
    rows = frame(rows_for("d", "jpeg2000", RATES, PSNRS), rows_for("d", "one", [0.3], [35.0]))
    row = bd_table(curves(rows)).iloc[0]
    assert math.isnan(row["bd_rate_psnr"]) and "too few RD points" in row["note"]


def test_envelope_drops_dominated_points_and_interpolation_does_not_extrapolate():
    rate, value = envelope(np.array([0.4, 0.1, 0.2, 0.3]), np.array([36.0, 30.0, 33.0, 32.0]))
    assert list(rate) == [0.1, 0.2, 0.4] and list(value) == [30.0, 33.0, 36.0]
    assert interpolate_at(rate, value, 0.2) == pytest.approx(33.0)
    assert math.isnan(interpolate_at(rate, value, 0.05))
    assert math.isnan(interpolate_at(rate, value, 0.5))
    # PCHIP in log-rate: linear data in log10(bpp) is reproduced exactly
    r = np.array([0.1, 0.2, 0.4, 0.8])
    assert interpolate_at(r, 30 + 10 * np.log10(r / 0.1), 0.3) == pytest.approx(
        30 + 10 * math.log10(3))


def test_clinical_ratio_bpp_and_msssim_db():
    assert clinical_bpp(8, 10) == pytest.approx(0.8)
    assert clinical_bpp(12, 30) == pytest.approx(0.4)
    assert msssim_db(0.99) == pytest.approx(20.0)
    assert math.isinf(msssim_db(1.0))


def test_bd_rows_state_the_interval_they_average_over():
    rows = frame(rows_for("d", "jpeg2000", RATES, PSNRS),
                 rows_for("d", "shifted", [2 * r for r in RATES], [p + 2 for p in PSNRS]))
    row = bd_table(curves(rows)).iloc[0]
    assert (row["psnr_from"], row["psnr_to"]) == pytest.approx((32.0, 42.0), abs=0.02)
    assert (row["bpp_from"], row["bpp_to"]) == pytest.approx((0.2, 1.6), rel=0.02)
    lossless_only = frame(rows_for("d", "jpeg2000", RATES, PSNRS),
                          rows_for("d", "png", [], [], lossless_bpp=3.0))
    assert bd_table(curves(lossless_only)).iloc[0]["note"].startswith("lossless only")
