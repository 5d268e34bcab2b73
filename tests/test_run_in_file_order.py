"""A run read whole is read in the order of its file (``store.run_rows_where``): the same
rows, only this run's, however its rows interleave with other runs' in the file.

Reading a run in key order costs a page read per row wherever the row lies: comparing two
10⁷-row stores that way read ~17 MB/s from disk. So the report's selections and
``compare``'s scans read rowid ranges; these tests hold that they still select exactly
the run's rows when other runs' rows lie inside and around that range (a run resumed
after another), and that SQLite does read them by rowid.
"""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from medbench.benchmark.store import STORE_NAME, ResultsStore, run_rowids, run_rows_where
from medbench.reports.build import build_report
from medbench.reports.compare import compare, format_comparison, load_results, open_results
from medbench.reports.pairing import _BASE_ROWS, _LINE_KEY, _LINES, _NEW_ROWS, Pair
from medbench.reports.store_means import report_rows_where
from tests.scale_rows import RUN_ID, scale_rows, write_store

#: Older runs (by start time) whose ids sort before and after the latest run's.
BEFORE, AFTER = "20261201T000000Z-aaaaaa", "zz-an-older-run"


def _other_run(db: sqlite3.Connection, run_id: str, rows: pd.DataFrame) -> None:
    """``rows`` as run ``run_id``, worse everywhere (a leak into the latest run shows)."""
    db.execute("INSERT INTO runs VALUES (?, '2026-12-01T00:00:00+00:00', NULL, 'finished', "
               "'{}', '{}') ON CONFLICT DO NOTHING", (run_id,))
    _insert(db, rows.assign(run_id=run_id, psnr=rows["psnr"] - 3.0, bytes=rows["bytes"] * 2))


def _insert(db: sqlite3.Connection, rows: pd.DataFrame) -> None:
    names = [c for c in rows.columns if c in _columns(db)]
    values = rows[names].astype(object).where(rows[names].notna(), None)
    db.executemany(f"INSERT INTO results ({', '.join(names)}) VALUES "
                   f"({', '.join('?' for _ in names)})",
                   [[v.item() if hasattr(v, "item") else v for v in r]
                    for r in values.itertuples(index=False)])


def _columns(db: sqlite3.Connection) -> set[str]:
    return {r[1] for r in db.execute("PRAGMA table_info(results)")}


def interleaved(folder, rows: pd.DataFrame):
    """A results folder whose latest run holds ``rows``, written in two halves with an
    older run's rows between them, after another older run's and before more of both."""
    half = len(rows) // 2
    path = write_store(folder, rows.iloc[:0]) / STORE_NAME
    db = sqlite3.connect(path)
    with db:
        _other_run(db, BEFORE, rows.iloc[: half // 2])
        _insert(db, rows.iloc[:half].assign(run_id=RUN_ID))
        _other_run(db, AFTER, rows.iloc[: half // 2])
        _insert(db, rows.iloc[half:].assign(run_id=RUN_ID))
        _other_run(db, BEFORE, rows.iloc[half // 2:])
        _other_run(db, AFTER, rows.iloc[half // 2:])
    db.close()
    return folder


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    rows = scale_rows().assign(run_id=RUN_ID)
    root = tmp_path_factory.mktemp("file-order")
    return rows, write_store(root / "alone", rows), interleaved(root / "mixed", rows)


def test_the_run_s_rowids_span_only_what_it_needs(stores):
    rows, alone, mixed = stores
    for folder in (alone, mixed):
        db = sqlite3.connect(folder / STORE_NAME)
        low, high = run_rowids(db, RUN_ID)
        first, last = db.execute("SELECT MIN(rowid), MAX(rowid) FROM results "
                                 "WHERE run_id = ?", (RUN_ID,)).fetchone()
        assert (low, high) == (first, last)
        assert run_rowids(db, "no-such-run") == (0, -1)
        where, params = run_rows_where(db, "no-such-run")
        assert db.execute(f"SELECT COUNT(*) FROM results WHERE {where}", params).fetchone() \
            == (0,)
        db.close()


def test_a_run_among_others_reads_exactly_its_rows(stores):
    rows, alone, mixed = stores
    mine = ResultsStore.open_existing(mixed / STORE_NAME)
    assert mine.run_or_latest() == RUN_ID and len(mine.runs()) == 3
    frame = mine.frame(RUN_ID)
    mine.close()
    pd.testing.assert_frame_equal(frame, load_results(alone)[0])
    db = sqlite3.connect(mixed / STORE_NAME)
    for part in ("settings", "targets", "all", "kept", "milestones"):
        where, params = report_rows_where(db, RUN_ID, part)
        clean = sqlite3.connect(alone / STORE_NAME)
        want = clean.execute(f"SELECT COUNT(*), SUM(psnr), SUM(bytes) FROM results "
                             f"WHERE {report_rows_where(clean, RUN_ID, part)[0]}",
                             report_rows_where(clean, RUN_ID, part)[1]).fetchone()
        clean.close()
        got = db.execute(f"SELECT COUNT(*), SUM(psnr), SUM(bytes) FROM results WHERE {where}",
                         params).fetchone()
        assert got[0] == want[0] and got[2] == want[2]
        assert got[1] == (None if want[1] is None else pytest.approx(want[1], rel=1e-12))
    db.close()


def test_report_and_comparison_of_an_interleaved_run_are_those_of_the_run_alone(
        stores, tmp_path):
    rows, alone, mixed = stores
    one = build_report(alone, tmp_path / "alone").out
    other = build_report(mixed, tmp_path / "mixed").out
    for name in ("summary.csv", "bd_rate.csv", "targets.csv", "table1.csv", "errors.csv"):
        if (one / name).exists():
            assert (one / name).read_text() == (other / name).read_text(), name
    assert (one / "summary.md").read_text() == (other / "summary.md").read_text()
    changed = write_store(tmp_path / "changed", rows.assign(psnr=rows["psnr"] - 0.1))
    for base, new in ((mixed, changed), (changed, mixed), (mixed, mixed)):
        want = compare(load_results(alone if base is mixed else base)[0],
                       load_results(alone if new is mixed else new)[0])
        got = compare(open_results(base)[0], open_results(new)[0])
        assert format_comparison(got) == format_comparison(want)
        pd.testing.assert_frame_equal(got.table, want.table)


def test_sqlite_reads_a_whole_run_by_rowid(stores):
    """What the change is for: no whole-run read goes through the key."""
    rows, alone, mixed = stores
    for folder in (alone, mixed):
        db = sqlite3.connect(folder / STORE_NAME)
        for part in ("settings", "targets", "kept"):
            where, params = report_rows_where(db, RUN_ID, part)
            plan = _plan(db, f"SELECT psnr FROM results WHERE {where} ORDER BY rowid", params)
            assert "USING INTEGER PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan
        db.close()
        run = open_results(folder)[0]
        with Pair(run, run) as pair:
            for query, scanned, looked_up in (
                    (f"SELECT {_LINES} FROM ({_BASE_ROWS}) GROUP BY {_LINE_KEY}", "base", "new"),
                    (f"SELECT {_LINES} FROM ({_NEW_ROWS}) GROUP BY {_LINE_KEY}", "new", "base")):
                plan = _plan(pair.db, query, ())
                assert f"store_{scanned}.results USING INTEGER PRIMARY KEY" in plan, plan
                assert f"store_{looked_up}.results USING INDEX sqlite_autoindex" in plan, plan


def test_a_run_thin_among_another_s_rows_is_read_through_the_key(tmp_path):
    """A small run resumed after a larger one was written into the same store: its rowids
    span the other's rows, so it is read through the key, and still exactly."""
    rows = scale_rows(copies=2).assign(run_id=RUN_ID)
    few = rows.iloc[:40]
    path = write_store(tmp_path / "thin", few.iloc[:20]) / STORE_NAME
    db = sqlite3.connect(path)
    with db:
        _other_run(db, BEFORE, scale_rows(copies=3))
        _insert(db, few.iloc[20:])
    assert run_rowids(db, RUN_ID) is None and run_rowids(db, BEFORE) is not None
    where, params = report_rows_where(db, RUN_ID, "kept")
    assert where.startswith("run_id = ?")
    got = db.execute(f"SELECT COUNT(*), SUM(bytes) FROM results WHERE {where}", params)
    assert got.fetchone() == (len(few), int(few["bytes"].sum()))
    db.close()
    pd.testing.assert_frame_equal(load_results(tmp_path / "thin")[0],
                                  load_results(write_store(tmp_path / "alone", few))[0])
    thin = open_results(tmp_path / "thin")[0]
    got = compare(thin, open_results(tmp_path / "alone")[0])
    assert got.passed and format_comparison(got) == format_comparison(
        compare(load_results(tmp_path / "alone")[0], load_results(tmp_path / "alone")[0]))


def _plan(db: sqlite3.Connection, query: str, params) -> str:
    return "\n".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {query}", list(params)))
