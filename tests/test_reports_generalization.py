"""The generalization matrix: train × test at a matched rate, for each learned codec."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medbench.reports.bd import bd_table
from medbench.reports.curves import curves
from medbench.reports.generalization import common_bpp, generalization_table, matrix

RATES = [0.1, 0.2, 0.4, 0.8]
#: PSNR offset (dB) of the model trained on the key's first dataset, tested on its second.
OFFSET = {("a", "a"): 3.0, ("a", "b"): 1.0, ("a", "c"): 0.5,
          ("b", "a"): 0.0, ("b", "b"): 2.5, ("b", "c"): -1.0}


def psnr_at(bpp, offset=0.0):
    return 30.0 + 10.0 * math.log10(bpp / 0.1) + offset  # linear in log-rate


def rows(rates_by_train=None):
    out = []
    for (train, test), off in OFFSET.items():
        rates = (rates_by_train or {}).get(train, RATES)
        for k, r in enumerate(rates):
            out.append({"dataset": test, "codec": "dcae", "setting": f"{train}-{k}",
                        "setting_rank": k, "image_id": "x", "status": "ok", "bit_depth": 8,
                        "codec_kind": "learned", "train_dataset": train, "bpp": r,
                        "psnr": psnr_at(r, off), "ms_ssim": 0.99})
    for test in "abc":
        for k, r in enumerate(RATES):
            out.append({"dataset": test, "codec": "jpeg2000", "setting": f"ratio={k}",
                        "setting_rank": k, "image_id": "x", "status": "ok", "bit_depth": 8,
                        "codec_kind": "classical", "train_dataset": None, "bpp": r,
                        "psnr": psnr_at(r), "ms_ssim": 0.99})
    return pd.DataFrame(out)


def test_matrix_has_train_rows_and_test_columns_with_values_at_one_bpp():
    found = curves(rows())
    table = generalization_table(found, bd_table(found))
    assert len(table) == 6
    bpp = table["common_bpp"].unique()
    assert len(bpp) == 1 and bpp[0] == pytest.approx(math.sqrt(0.1 * 0.8))
    grid = matrix(table, "dcae")
    assert list(grid.index) == ["a", "b"] and list(grid.columns) == ["a", "b", "c"]
    for (train, test), off in OFFSET.items():
        assert grid.loc[train, test] == pytest.approx(psnr_at(bpp[0], off))
    anchor = table["anchor_psnr_at_bpp"].to_numpy()
    assert anchor == pytest.approx([psnr_at(bpp[0])] * 6)
    diag = table[table["in_domain"]]
    assert sorted(zip(diag["train_dataset"], diag["test_dataset"])) == [("a", "a"), ("b", "b")]


def test_bd_rate_cells_come_from_the_test_datasets_anchor():
    found = curves(rows())
    table = generalization_table(found, bd_table(found)).set_index(
        ["train_dataset", "test_dataset"])
    # 10 dB per decade: +3 dB = 10**(-0.3) of the rate = -49.9 %
    assert table.loc[("a", "a"), "bd_rate_psnr"] == pytest.approx(
        (10 ** (-3 / 10) - 1) * 100)
    assert table.loc[("b", "a"), "bd_rate_psnr"] == pytest.approx(0.0, abs=1e-9)
    grid = matrix(table.reset_index(), "dcae", "bd_rate_psnr")
    assert grid.loc["b", "c"] == pytest.approx((10 ** 0.1 - 1) * 100)


def test_curves_without_a_common_range_fall_back_and_leave_cells_empty():
    found = curves(rows({"a": [0.1, 0.2], "b": [0.4, 0.8]}))
    learned = [c for c in found if c.codec == "dcae"]
    bpp, how = common_bpp(learned)
    assert "share no bpp range" in how
    table = generalization_table(found, bd_table(found))
    assert table["psnr_at_bpp"].isna().sum() == 3  # the curves that don't reach it
    assert table.loc[table["psnr_at_bpp"].isna(), "note"].str.contains("does not reach").all()


def test_no_learned_rows_gives_an_empty_table():
    only_classical = rows()
    only_classical = only_classical[only_classical["codec"] == "jpeg2000"]
    found = curves(only_classical)
    assert generalization_table(found, bd_table(found)).empty
