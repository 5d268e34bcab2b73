"""The summary table: means with Student-t 95 % intervals, image and error counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medbench.reports.format import fmt_pm, markdown, text_frame
from medbench.reports.means import ci_halfwidth
from medbench.reports.summary import format_table, summarize


def _rows(values, status=None):
    n = len(values)
    return pd.DataFrame({
        "dataset": ["d"] * n, "codec": ["c"] * n, "setting": ["s"] * n,
        "setting_rank": [0] * n, "image_id": [f"i{k}" for k in range(n)],
        "status": status or ["ok"] * n, "bpp": values, "psnr": values, "ssim": values,
        "ms_ssim": values, "max_abs_error": [1] * n, "encode_ms": values,
        "decode_ms": values, "train_dataset": [None] * n, "codec_kind": ["classical"] * n,
    })


def test_ci_halfwidth_matches_the_t_interval():
    # mean 3, s = sqrt(2.5), n = 5: half-width = t(0.975, 4) * s / sqrt(5) = 1.9632
    assert ci_halfwidth(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(1.963243, abs=1e-6)
    low, high = stats.t.interval(0.95, 4, loc=3, scale=stats.sem([1, 2, 3, 4, 5]))
    assert ci_halfwidth([1.0, 2, 3, 4, 5]) == pytest.approx((high - low) / 2)


def test_ci_is_undefined_for_one_image_or_an_infinite_mean():
    assert math.isnan(ci_halfwidth([4.0]))
    assert math.isnan(ci_halfwidth([40.0, math.inf]))
    assert ci_halfwidth([2.0, 2.0, 2.0]) == 0.0


def test_ci_narrows_with_more_images():
    rng = np.random.default_rng(1)
    few, many = rng.normal(40, 2, 5), rng.normal(40, 2, 500)
    assert ci_halfwidth(many) < ci_halfwidth(few) / 5


def test_summarize_counts_errors_and_adds_ci_columns():
    rows = _rows([1.0, 2, 3, 4, 5, float("nan")], status=["ok"] * 5 + ["error"])
    table = summarize(rows)
    line = table.iloc[0]
    assert (line["images"], line["errors"], line["unsupported"]) == (5, 1, 0)
    assert line["psnr"] == pytest.approx(3.0)
    assert line["psnr_ci"] == pytest.approx(1.963243, abs=1e-6)
    assert line["bpp_ci"] == pytest.approx(line["decode_ms_ci"])
    assert "3.000" in format_table(table)  # the CLI table still renders


def test_text_and_markdown_show_mean_plus_minus_ci():
    table = summarize(_rows([1.0, 2, 3, 4, 5]))
    text = text_frame(table, [("codec", "codec", "{}"), ("psnr", "PSNR", "pm{:.2f}")])
    assert text.iloc[0, 1] == "3.00 ± 1.96"
    md = markdown(text)
    assert md.splitlines()[0] == "| codec | PSNR |"
    assert md.splitlines()[1] == "| --- | ---: |"  # numbers align right
    assert md.splitlines()[2] == "| c | 3.00 ± 1.96 |"
    assert fmt_pm(math.inf, math.nan, "{:.2f}") == "inf"
