"""The summary table: means with Student-t 95 % intervals, image and error counts.

The intervals themselves are tested with ``setting_means`` (tests/test_reports_means.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medbench.reports.format import fmt_pm, markdown, text_frame
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


def test_summarize_counts_errors_and_adds_ci_columns():
    rows = _rows([1.0, 2, 3, 4, 5, float("nan")], status=["ok"] * 5 + ["error"])
    table = summarize(rows)
    line = table.iloc[0]
    assert (line["images"], line["errors"], line["unsupported"]) == (5, 1, 0)
    assert line["psnr"] == pytest.approx(3.0)
    assert line["psnr_ci"] == pytest.approx(1.963243, abs=1e-6)
    assert "3.000" in format_table(table)  # the CLI table still renders


def test_each_metric_has_its_own_mean_and_interval():
    """Every metric column is averaged and given an interval from its own values: the
    Student-t half-width t(0.975, n-1)·s/√n, computed here with scipy."""
    from scipy import stats

    columns = {"bpp": [0.1, 0.2, 0.4, 0.8, 1.6], "psnr": [30.0, 31, 33, 36, 40],
               "ssim": [0.90, 0.91, 0.95, 0.97, 0.99], "ms_ssim": [0.95, 0.96, 0.97, 0.99, 1.0],
               "encode_ms": [10.0, 12, 11, 30, 14], "decode_ms": [3.0, 1, 4, 1, 5]}
    rows = _rows([0.0] * 5).assign(**columns)
    line = summarize(rows).iloc[0]
    for name, values in columns.items():
        values = np.array(values)
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        assert line[name] == pytest.approx(values.mean(), rel=1e-12), name
        assert line[f"{name}_ci"] == pytest.approx(half, rel=1e-9), name


def test_text_and_markdown_show_mean_plus_minus_ci():
    table = summarize(_rows([1.0, 2, 3, 4, 5]))
    text = text_frame(table, [("codec", "codec", "{}"), ("psnr", "PSNR", "pm{:.2f}")])
    assert text.iloc[0, 1] == "3.00 ± 1.96"
    md = markdown(text)
    assert md.splitlines()[0] == "| codec | PSNR |"
    assert md.splitlines()[1] == "| --- | ---: |"  # numbers align right
    assert md.splitlines()[2] == "| c | 3.00 ± 1.96 |"
    assert fmt_pm(math.inf, math.nan, "{:.2f}") == "inf"


def test_complexity_is_beside_latency_only_where_a_model_has_it():
    rows = _rows([1.0, 2, 3]).assign(peak_mem_mb=[4.0, 9.5, 6.0])
    table = summarize(rows)
    assert table.iloc[0]["peak_mem_mb"] == 9.5  # the largest image's peak
    text = format_table(table)
    assert "peak MiB" in text and "9.5" in text and "kMAC" not in text
    learned = rows.assign(params=[1234] * 3, kmac_per_pixel_enc=[3.1] * 3,
                          kmac_per_pixel_dec=[2.9] * 3)
    line = summarize(learned).iloc[0]
    assert (line["params"], line["kmac_per_pixel_enc"], line["kmac_per_pixel_dec"]) == \
        (1234, 3.1, 2.9)
    header = format_table(summarize(learned)).splitlines()[0]
    assert header.index("dec ms") < header.index("peak MiB") < header.index("kMAC/px enc")
