"""Setting means computed in the store (SQL) are the ones ``setting_means`` computes from
the rows as a DataFrame: same lines, same order, same numbers, same interval methods."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.store import STORE_NAME
from medbench.reports.bd import bd_table
from medbench.reports.bd_ci import bd_intervals, bd_intervals_in_store
from medbench.reports.budget import split_milestones
from medbench.reports.build import load_run
from medbench.reports.curves import curves, curves_from_means
from medbench.reports.means import setting_means
from medbench.reports.seen import leave_out_seen
from medbench.reports.store_means import (
    curve_depths,
    is_target,
    means_in_store,
    report_means,
    report_rows_where,
)
from medbench.reports.targets import target_rows
from tests.scale_rows import RUN_ID, as_older_store, scale_rows, write_store


def _edge_rows() -> pd.DataFrame:
    """The scale rows and the rows they lack: milestones, an error row without a train
    dataset, a setting of errors only, a setting without PSNRs, every image of a setting
    exact."""
    rows = scale_rows()
    hyper = rows[(rows["codec"] == "hyperprior") & ~rows["setting"].str.startswith("target:")]
    milestone = hyper.assign(setting=hyper["setting"] + "@512steps", psnr=hyper["psnr"] - 3)
    unread = hyper.iloc[[0]].assign(train_dataset=None, status="error", psnr=None,
                                    bpp=None, image_id="unread-image", error="unreadable")
    failed = rows[(rows["codec"] == "jpeg") & (rows["setting"] == "q=50")].assign(
        setting="q=51", status="error", psnr=None, bpp=None, error="planted")
    no_psnr = rows[(rows["codec"] == "jpeg") & (rows["setting"] == "q=50")
                   & (rows["status"] == "ok")].assign(setting="q=52", psnr=None,
                                                      group_kind="patient, or study")
    jp2 = rows[(rows["codec"] == "jpeg2000") & (rows["setting"] == "ratio=5")]
    lossless = jp2.assign(setting="ratio=4", psnr=math.inf, mse=0.0, setting_rank=99)
    return pd.concat([rows, milestone, unread, failed, no_psnr, lossless], ignore_index=True)


def _frame_means(folder, part: str) -> pd.DataFrame:
    """The report's rows of ``part``, as build_report selects them, through setting_means."""
    rows = split_milestones(leave_out_seen(load_run(folder)[0])[0])[0]
    matched = target_rows(rows)
    rows = rows.drop(index=matched.index)
    chosen = {"settings": rows, "targets": matched, "all": pd.concat([rows, matched])}[part]
    return setting_means(chosen)


def _same(a: object, b: object, tolerance: float = 1e-12) -> bool:
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        if pd.isna(a) and pd.isna(b):
            return True
        if pd.isna(a) or pd.isna(b):
            return False
        return a == b or abs(float(a) - float(b)) <= tolerance * max(1.0, abs(float(a)))
    return (pd.isna(a) and pd.isna(b)) if (a is None or b is None) else a == b


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("store-means"), _edge_rows())


@pytest.mark.parametrize("part", ["settings", "targets", "all"])
def test_store_means_are_the_frame_means(store, part):
    want = _frame_means(store, part)
    with sqlite3.connect(store / STORE_NAME) as db:
        where, params = report_rows_where(db, RUN_ID, part)
        got = means_in_store(db, where, params).table
    assert list(got.columns) == list(want.columns)
    assert got[["dataset", "codec", "setting"]].values.tolist() == \
        want[["dataset", "codec", "setting"]].values.tolist()
    different = [(column, i, want.at[i, column], got.at[i, column])
                 for column in want.columns for i in want.index
                 if not _same(want.at[i, column], got.at[i, column])]
    assert different == []
    if part == "settings":  # what the edge rows are there for did happen
        lines = want.set_index(["codec", "setting"])
        assert lines.loc[("jpeg", "q=51"), "images"].eq(0).all()  # errors only
        assert lines.loc[("jpeg", "q=52"), "psnr"].isna().all()  # ok rows without PSNR
        assert set(lines.loc[("jpeg", "q=52"), "group_kind"]) == {"patient, or study"}
        assert lines.loc[("jpeg2000", "ratio=4"), "psnr"].eq(math.inf).all()
        assert not any("@" in s for s in want["setting"])  # milestones left out
        unread = lines.loc[("hyperprior", want.loc[want["codec"] == "hyperprior",
                                                   "setting"].iloc[0])]
        assert unread["errors"].sum() == 1 and unread["train_dataset"].notna().all()
        methods = " ".join(want["ci_method"])
        assert "cluster bootstrap" in methods and "student-t" in methods


def test_a_store_without_newer_columns_reads_them_as_empty(tmp_path):
    folder = write_store(tmp_path, scale_rows(copies=3))
    with sqlite3.connect(folder / STORE_NAME) as db:
        as_older_store(db)
        for column in ("display_psnr", "knob", "seen_in_training", "codec_kind"):
            db.execute(f"ALTER TABLE results DROP COLUMN {column}")
        where, params = report_rows_where(db, RUN_ID, "settings")
        got = means_in_store(db, where, params).table
    assert len(got) and got["display_psnr"].isna().all() and got["psnr"].notna().all()


def test_curves_and_bd_intervals_from_the_store_are_those_of_the_rows(store):
    rows = split_milestones(leave_out_seen(load_run(store)[0])[0])[0]
    rows = rows.drop(index=target_rows(rows).index)
    want_curves = curves(rows)
    want = bd_intervals(rows, bd_table(want_curves))
    with sqlite3.connect(store / STORE_NAME) as db:
        found = report_means(db, RUN_ID)
    settings = found.table.loc[~found.table["setting"].map(is_target).astype(bool)]
    got_curves = curves_from_means(settings, curve_depths(found))
    assert [(c.key, c.bit_depths) for c in got_curves] == \
        [(c.key, c.bit_depths) for c in want_curves]
    got = bd_intervals_in_store(found, bd_table(got_curves))
    assert want["bd_ci_method"].str.startswith("bootstrap").any()
    assert list(got.columns) == list(want.columns)
    # BD values amplify the means' summation order (1e-15) to about 1e-11
    assert all(_same(a, b, 1e-9) for column in want.columns
               for a, b in zip(want[column], got[column]))


def test_bd_resamples_drawn_in_blocks_give_the_same_intervals(store, monkeypatch):
    from medbench.reports import bd_ci

    with sqlite3.connect(store / STORE_NAME) as db:
        found = report_means(db, RUN_ID)
    settings = found.table.loc[~found.table["setting"].map(is_target).astype(bool)]
    bd = bd_table(curves_from_means(settings, curve_depths(found)))
    whole = bd_intervals_in_store(found, bd)
    groups = max(len(g) for g in found.groups.values())
    monkeypatch.setattr(bd_ci, "BLOCK", 7 * groups)  # about 7 resamples a block
    blocked = bd_intervals_in_store(found, bd)
    assert whole["bd_ci_method"].str.startswith("bootstrap").any()
    pd.testing.assert_frame_equal(blocked, whole)
