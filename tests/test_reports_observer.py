"""The report's observer tables: read from the store, written as CSV, task-lossless limits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.observers.experiment import SiteObservation
from medbench.benchmark.observers.summary import COLUMNS
from medbench.benchmark.rows import ResultRow
from medbench.benchmark.store import ResultsStore
from medbench.reports.observer import (
    OBSERVER_CSV,
    observer_table,
    task_lossless_limits,
    write_observer_csv,
)


# -- task-lossless limits --------------------------------------------------------------------------
def limit_rows(codec, settings):
    """Rows of one codec, one observer and size: ``(setting, ratio, [(low, high), ...])``."""
    rows = []
    for setting, ratio, intervals in settings:
        for contrast, (low, high) in zip((0.025, 0.05), intervals):
            rows.append({"dataset": "d", "codec": codec, "train_dataset": None,
                         "setting": setting, "observer": "cho", "diameter_mm": 6.0,
                         "contrast": contrast, "ratio": ratio, "bpp": 8 / ratio,
                         "dprime_ratio_low": low, "dprime_ratio_high": high})
    return rows


def test_the_limit_is_the_highest_ratio_shown_not_to_lose_more_than_five_percent():
    rows = limit_rows("a", [
        ("lossless", 2.5, [(1.0, 1.0), (1.0, 1.0)]),
        ("s5", 5.0, [(0.96, 1.02), (0.97, 1.01)]),
        ("s10", 10.0, [(0.90, 1.05), (0.97, 1.03)]),  # could lose 10 %: not shown lossless
        ("s20", 20.0, [(0.96, 1.01), (0.99, 1.02)]),  # passes again: a non-monotone curve
        ("s40", 40.0, [(0.50, 0.80), (0.60, 0.90)]),
    ]) + limit_rows("b", [
        ("s5", 5.0, [(1.02, 1.10), (1.01, 1.08)]),  # more detectable than the original
        ("s10", 10.0, [(np.nan, np.nan), (0.99, 1.01)]),  # no interval: never lossless
    ]) + [{"dataset": "d", "codec": "original", "train_dataset": None, "setting": "",
           "observer": "cho", "diameter_mm": 6.0, "contrast": 0.025, "ratio": np.nan,
           "bpp": np.nan, "dprime_ratio_low": np.nan, "dprime_ratio_high": np.nan}]
    limits = task_lossless_limits(pd.DataFrame(rows)).set_index("codec")
    a, b = limits.loc["a"], limits.loc["b"]
    assert a["limit_setting"] == "s20" and a["limit_ratio"] == 20.0
    assert a["limit_bpp"] == pytest.approx(0.4)
    assert a["first_failure"] == "s10" and a["first_failure_contrast"] == 0.025
    assert "not monotone: s10 (10:1) fails below the limit" in a["note"]
    assert a["limit_setting_includes_1"] == "s20" and a["settings"] == 5
    assert b["limit_setting"] == "s5" and b["first_failure"] == "s10"
    assert pd.isna(b["limit_ratio_includes_1"])  # an interval above 1 does not include 1
    assert "original" not in limits.index


def test_a_codec_that_fails_at_its_least_compressed_setting_has_no_limit():
    rows = limit_rows("c", [("q=95", 4.7, [(0.85, 1.01), (0.9, 1.0)])])
    (row,) = task_lossless_limits(pd.DataFrame(rows)).to_dict("records")
    assert pd.isna(row["limit_ratio"]) and row["limit_setting"] is None
    assert row["first_failure"] == "q=95" and row["limit_ratio_includes_1"] == 4.7


# -- the table from the store -----------------------------------------------------------------
def observation(codec, setting, site, contrast, present, absent):
    return SiteObservation(codec, setting, site, 6.0, contrast, "ok", row=10, col=12,
                           cho_present=np.array(present, dtype=float),
                           cho_absent=np.array(absent, dtype=float),
                           npwe_present=float(sum(present)), npwe_absent=float(sum(absent)),
                           spacing_row_mm=1.68, spacing_col_mm=1.68,
                           spacing_source="ASSUMED 430 mm", channel_width_mm=3.0)


def fill_store(path, finish=True):
    store = ResultsStore(path / "results.sqlite")
    run_id = store.new_run({"seed": 0}, {})
    rng = np.random.default_rng(0)
    for g in range(4):
        items = tuple(observation("", "", k, 0.05, rng.normal(2, 1, 3), rng.normal(0, 1, 3))
                      for k in range(5))
        items += (SiteObservation("", "", -1, 6.0, 0.05, "skipped", "only 5 of 6 sites fit"),)
        row = ResultRow(run_id=run_id, dataset="d", image_id=f"i{g}", group_id=f"p{g}",
                        codec="png", setting="lossless", bpp=4.0, ratio=2.0,
                        observations=items)
        store.write(row)
    if finish:
        from medbench.benchmark.observers.summary import summarize

        store.write_observer(run_id, summarize(store.observer_sites(run_id),
                                               store.frame(run_id), 0, run_id))
    return store, run_id


def test_sites_travel_through_the_store_bit_for_bit(tmp_path):
    store, run_id = fill_store(tmp_path, finish=False)
    sites = store.observer_sites(run_id)
    assert len(sites) == 24 and set(sites["status"]) == {"ok", "skipped"}
    ok = sites[sites["status"] == "ok"]
    assert ok["cho_present"].iloc[0].dtype == np.float64 and ok["cho_present"].iloc[0].shape == (3,)
    assert (ok["row"] == 10).all() and (ok["group_id"].str.startswith("p")).all()
    assert store.delete_image(run_id, "d", "i0") == 1
    assert len(store.observer_sites(run_id)) == 18


def test_a_finished_run_reads_its_stored_table_and_writes_the_csv(tmp_path):
    store, run_id = fill_store(tmp_path)
    table = observer_table(store, run_id)
    assert list(table.columns) == list(COLUMNS) and len(table) == 2  # cho and npwe
    assert not table["note"].str.contains("unfinished").any()
    path = write_observer_csv(store, run_id, tmp_path / "report")
    assert path == tmp_path / "report" / OBSERVER_CSV
    assert len(pd.read_csv(path)) == 2


def test_an_unfinished_run_is_summarized_from_its_sites_and_says_so(tmp_path):
    store, run_id = fill_store(tmp_path, finish=False)
    store.close()
    readonly = ResultsStore.open_existing(tmp_path)
    table = observer_table(readonly, run_id)
    assert len(table) == 2 and table["note"].str.startswith("run unfinished").all()
    assert table["n_skipped"].tolist() == [4, 4]


def test_a_run_without_the_experiment_writes_no_csv(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    run_id = store.new_run({}, {})
    assert observer_table(store, run_id).empty
    assert write_observer_csv(store, run_id, tmp_path / "report") is None
    assert not (tmp_path / "report").exists()
