"""The end of ``medbench run`` never loads the run's rows: results.csv is streamed from the
store, the terminal table and counts are computed in it (a 10⁷-cell run's rows would take
~20 GB as a frame), and they say what the frame would have said."""

from __future__ import annotations

import csv
import io
import sqlite3

import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark import store as store_module
from medbench.benchmark.rows import COLUMNS, UNREADABLE
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.cli import main
from medbench.reports.seen import leave_out_seen
from medbench.reports.summary import format_table, run_totals, summarize, summarize_run
from tests.scale_rows import RUN_ID, scale_rows, write_store

INTEGERS = [c for c, kind in COLUMNS.items() if kind.startswith("INTEGER")]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The scale rows (errors, refusals, targets, learned rows, images seen in training:
    read from the rows) and the same without seen images (read from the kept lines)."""
    root = tmp_path_factory.mktemp("run-end")
    rows = scale_rows()
    unseen = rows.assign(seen_in_training=None)
    return write_store(root / "seen", rows), write_store(root / "unseen", unseen)


def _frame(folder) -> pd.DataFrame:
    store = ResultsStore.open_existing(folder)
    try:
        return store.frame(RUN_ID)
    finally:
        store.close()


def test_results_csv_holds_the_frame_s_values(stores, tmp_path):
    for folder in stores:
        store = ResultsStore.open_existing(folder)
        path = store.export_csv(RUN_ID, tmp_path / "results.csv")
        store.close()
        frame = _frame(folder)
        got = pd.read_csv(path)
        want = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
        assert list(got.columns) == list(COLUMNS)
        pd.testing.assert_frame_equal(got, want)
        # Integers print as integers, also in a column where some rows have none.
        lines = list(csv.DictReader(path.open(newline="")))
        gapped = [c for c in INTEGERS if frame[c].isna().any() and frame[c].notna().any()]
        assert "bytes" in gapped
        for column in gapped:
            assert all("." not in line[column] for line in lines), column
        assert {line["lossless_exact"] for line in lines} <= {"True", "False", ""}


def test_a_failed_export_leaves_the_earlier_file_whole(stores, tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    path.write_text("the earlier results\n")

    real = csv.writer

    class Failing:
        def __init__(self, file, **kwargs):
            self.writer = real(file, **kwargs)

        def writerow(self, row):
            self.writer.writerow(row)

        def writerows(self, rows):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.csv, "writer", Failing)
    store = ResultsStore.open_existing(stores[0])
    with pytest.raises(OSError, match="No space"):
        store.export_csv(RUN_ID, path)
    store.close()
    assert path.read_text() == "the earlier results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_the_terminal_table_is_the_summary_of_the_rows(stores):
    for folder in stores:
        kept, _, notes = leave_out_seen(_frame(folder))
        store = ResultsStore.open_existing(folder)
        table, left_out = summarize_run(store, RUN_ID)
        store.close()
        assert format_table(table) == format_table(summarize(kept))
        assert left_out == notes
    assert left_out == {}  # (the second store has no seen image)


def test_totals_and_unreadable_images_are_counted_in_the_store(stores, tmp_path):
    rows = scale_rows()
    unreadable = rows.index[:7]
    rows.loc[unreadable, "status"] = "error"
    rows.loc[unreadable, "error"] = f"{UNREADABLE}: truncated file"
    rows.loc[rows.index[7], "error"] = f"Image Could Not Be Read? {UNREADABLE}"  # not one
    folder = write_store(tmp_path / "unreadable", rows)
    frame = _frame(folder)
    store = ResultsStore.open_existing(folder)
    found = store.unreadable_images(RUN_ID)
    totals = store.compute(run_totals, RUN_ID)
    store.close()
    flagged = frame[frame["error"].fillna("").str.startswith(UNREADABLE)]
    assert found == {str(d): int(n) for d, n in
                     flagged.groupby("dataset")["image_id"].nunique().items()}
    assert sum(found.values()) >= 1
    errors = frame[frame["status"] == "error"]
    first = errors.iloc[0]
    assert totals == (len(frame), len(errors),
                      (first["codec"], first["setting"], first["image_id"], first["error"]))
    db = sqlite3.connect(folder / STORE_NAME)
    assert run_totals(db, "no-such-run") == (0, 0, None)
    db.close()


def test_medbench_run_and_its_report_end_without_loading_the_rows(tmp_path, monkeypatch):
    def refused(self, run_id=None):
        raise AssertionError("the end of a run loaded every row")

    monkeypatch.setattr(ResultsStore, "frame", refused)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg", "--limit", "2", "--repeats",
                                       "0", "--out", str(out), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out / "results.csv")
    assert len(written) and (written["codec"] == "jpeg").all()
    assert f": {len(written)} rows, 0 errors" in result.output
    assert "q=50" in result.output  # the terminal table
