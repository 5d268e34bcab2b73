"""The per-patient lines a store keeps as rows are written (``benchmark.lines``) are its
rows: a report read from them says what a report read from the rows says, and where
they might not be the rows (a row replaced, deleted or updated; an older store; images
seen in training) a report reads the rows."""

from __future__ import annotations

import math
import shutil
import sqlite3

import pandas as pd
import pytest

from medbench.benchmark import lines
from medbench.benchmark.rows import ResultRow
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.reports.build import build_report
from medbench.reports.store_means import (
    is_target,
    kept_lines_where,
    means_in_store,
    report_rows_where,
)
from tests.scale_rows import RUN_ID, as_older_store, scale_rows, write_store
from tests.test_reports_same_numbers import WRITTEN, _read, _same
from tests.test_store_means import _edge_rows


def _unseen(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` without images seen in training (whose runs read their rows)."""
    return rows.assign(seen_in_training=None)


def _kept(path, table: str = lines.TABLE) -> pd.DataFrame:
    keys = lines.KEYS if table == lines.TABLE else lines.IMAGE_KEYS
    with sqlite3.connect(path) as db:
        return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {', '.join(keys)}", db)


def _rebuild(db: sqlite3.Connection) -> None:
    for table in (lines.TABLE, lines.IMAGES):
        db.execute(f"DELETE FROM {table}")
    for statement in lines._fill_sql():
        db.execute(statement)


def _same_lines(path) -> None:
    """The kept lines (both tables) are those built afresh from the rows (on a copy;
    the rows' numbers in the order SQLite met them: row numbers aside)."""
    copy = path.with_name("rebuilt.sqlite")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as db:
        source.backup(db)  # with what the write-ahead log holds
        _rebuild(db)
    try:
        for table in (lines.TABLE, lines.IMAGES):
            got, want = _kept(path, table), _kept(copy, table)
            assert len(got) == len(want)
            ids = [c for c in ("first_row", "first_ok") if c in got]  # rowids of replaced rows
            pd.testing.assert_frame_equal(got.drop(columns=ids), want.drop(columns=ids),
                                          check_exact=False, rtol=1e-12)
    finally:
        copy.unlink()


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("lines-edge"), _unseen(_edge_rows()))


@pytest.mark.parametrize("part", ["settings", "targets", "all", "kept", "milestones"])
@pytest.mark.parametrize("intervals", [True, False])
@pytest.mark.parametrize("parts", [None, "body_part"])
def test_the_lines_give_the_means_the_rows_give(edge, part, intervals, parts):
    """Every part a report reads, with and without intervals and body parts: the same
    table, groups, bit depths and kinds (sums taken in another order: to 1e-12)."""
    with sqlite3.connect(edge / STORE_NAME) as db:
        where, params = report_rows_where(db, RUN_ID, part)
        kept = kept_lines_where(db, RUN_ID, part)
        assert kept is not None
        keep = lambda key: not is_target(key[3])  # noqa: E731
        want = means_in_store(db, where, params, keep, parts, None, intervals)
        got = means_in_store(db, where, params, keep, parts, None, intervals, lines=kept)
    assert len(want.table) > 0
    pd.testing.assert_frame_equal(got.table, want.table, check_exact=False, rtol=1e-12)
    assert (got.depths, got.kinds) == (want.depths, want.kinds)
    assert got.groups.keys() == want.groups.keys()
    for key, groups in want.groups.items():
        pd.testing.assert_frame_equal(got.groups[key], groups, check_exact=False, rtol=1e-12)
    if parts:
        pd.testing.assert_frame_equal(got.parts.table, want.parts.table, check_exact=False,
                                      rtol=1e-12)
        assert (got.parts.depths, got.parts.kinds) == (want.parts.depths, want.parts.kinds)


def test_the_triggers_keep_the_lines_the_rows_make(edge):
    """Rows inserted one statement each (the triggers) make the lines a rebuild from
    the rows makes: key for key, count for count."""
    got = _kept(edge / STORE_NAME)
    _same_lines(edge / STORE_NAME)
    assert got["rows"].sum() == len(_edge_rows())
    assert (got.groupby(["setting", "grp"])["part"].nunique() > 1).any()  # two body parts


def test_a_report_read_from_the_lines_is_the_report_read_from_the_rows(tmp_path):
    folder = write_store(tmp_path / "lines", _unseen(scale_rows()))
    rows = tmp_path / "rows"
    shutil.copytree(folder, rows)
    with sqlite3.connect(rows / STORE_NAME) as db:
        as_older_store(db)
    for store, kept in ((folder, True), (rows, False)):
        with sqlite3.connect(store / STORE_NAME) as db:
            assert (kept_lines_where(db, RUN_ID) is not None) == kept
    a = build_report(folder, tmp_path / "a").out
    b = build_report(rows, tmp_path / "b").out
    names = sorted(p.name for p in a.iterdir() if p.suffix in (".md", ".csv"))
    assert names == sorted(p.name for p in b.iterdir() if p.suffix in (".md", ".csv"))
    assert "summary.csv" in names and "body_parts.csv" in names
    for name in names:
        if name.endswith(".md"):
            text = [WRITTEN.sub("", (f / name).read_text(encoding="utf-8")) for f in (a, b)]
            assert text[0] == text[1], name
            continue
        got, want = _read(a / name), _read(b / name)
        assert list(got.columns) == list(want.columns) and len(got) == len(want), name
        for column in want.columns:
            for x, y in zip(got[column], want[column]):
                assert _same(x, y), f"{name} {column}: {x!r} != {y!r}"


def _row(run_id: str, image_id: str, psnr: float, setting: str = "q=50") -> ResultRow:
    return ResultRow(run_id=run_id, dataset="nih", image_id=image_id, codec="jpeg",
                     setting=setting, status="ok", bpp=1.0, psnr=psnr, mse=1.0,
                     bit_depth=8, group_id=f"p-{image_id}", group_kind="patient",
                     codec_kind="classical")


def _usable(path, run_id: str) -> bool:
    with sqlite3.connect(path) as db:
        return lines.usable(db, run_id)


def test_a_replaced_or_deleted_row_makes_its_run_read_rows_until_the_lines_are_rebuilt(
        tmp_path):
    path = tmp_path / STORE_NAME
    store = ResultsStore(path)
    run = store.new_run({}, {})
    other = store.new_run({}, {})
    store.write_many([_row(run, f"i{k}", 30.0 + k) for k in range(4)])
    store.write_many([_row(other, "i0", 40.0)])
    assert _usable(path, run) and _usable(path, other)
    store.write(_row(run, "i1", 20.0))  # the same cell again: a replaced row
    assert not _usable(path, run) and _usable(path, other)
    store.set_run_status(run, "interrupted")  # Ctrl-C does not wait for a rebuild
    assert not _usable(path, run)
    store.set_run_status(run, "finished")  # the run's end rebuilds its lines
    assert _usable(path, run)
    _same_lines(path)
    psnr = _kept(path).query("run_id == @run")["psnr_s"].sum()
    assert math.isclose(psnr, 30 + 20 + 32 + 33)  # the replaced value, not both
    store.delete_image(run, "nih", "i2")  # --resume re-codes a changed file
    assert not _usable(path, run)
    store.close()
    ResultsStore(path).close()  # the next writer rebuilds them
    assert _usable(path, run)
    _same_lines(path)


def test_a_writer_that_bypasses_the_delete_trigger_is_noticed(tmp_path):
    """A replace through a connection without recursive triggers (an older medbench, a
    user's SQL) counts a row twice: the counts differ and the run reads its rows; an
    update marks the run stale."""
    path = tmp_path / STORE_NAME
    store = ResultsStore(path)
    run = store.new_run({}, {})
    store.write_many([_row(run, f"i{k}", 30.0) for k in range(3)])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT OR REPLACE INTO results (run_id, dataset, image_id, codec, "
                   "setting, status, psnr) VALUES (?, 'nih', 'i0', 'jpeg', 'q=50', 'ok', 1)",
                   (run,))
    assert not _usable(path, run)
    ResultsStore(path).close()
    assert not _usable(path, run)  # nothing marked it stale: the count alone tells
    with sqlite3.connect(path) as db:
        assert kept_lines_where(db, run) is None
        _rebuild(db)
    assert _usable(path, run)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE results SET psnr = 2 WHERE run_id = ? AND image_id = 'i1'", (run,))
    assert not _usable(path, run)


def test_an_older_store_gets_its_lines_from_the_next_writer(tmp_path):
    folder = write_store(tmp_path, _unseen(scale_rows(copies=2)))
    path = folder / STORE_NAME
    with sqlite3.connect(path) as db:
        as_older_store(db)
        assert kept_lines_where(db, RUN_ID) is None
    said: list[str] = []
    ResultsStore(path, echo=said.append).close()
    assert len(said) == 1 and "building the per-patient lines" in said[0] and str(path) in said[0]
    with sqlite3.connect(path) as db:
        assert kept_lines_where(db, RUN_ID) is not None
    _same_lines(path)
    ResultsStore(path, echo=said.append).close()  # built once
    ResultsStore(tmp_path / "new.sqlite", echo=said.append).close()  # nothing to build
    assert len(said) == 1


def test_a_run_with_images_seen_in_training_reads_its_rows(tmp_path):
    folder = write_store(tmp_path, scale_rows(copies=2))  # two rows mark a seen image
    with sqlite3.connect(folder / STORE_NAME) as db:
        assert lines.usable(db, RUN_ID)
        assert kept_lines_where(db, RUN_ID) is None
        plan = " ".join(str(r) for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM results WHERE run_id = ? AND "
            "seen_in_training = 1 LIMIT 1", (RUN_ID,)))
    assert "results_seen" in plan  # found through the index, not by reading the run


def _facts_rows() -> pd.DataFrame:
    """The edge rows, and what facts tell apart: images without a patient group, a
    second protocol and split, images of another size, rows without a size, a display
    window on deeper rows, a codec whose first ``ok`` row names no kind."""
    rows = _unseen(_edge_rows())
    nih = rows.index[rows["dataset"] == "nih"]
    rows.loc[nih[::7], "group_id"] = None
    rows.loc[nih[::5], ["width", "height"]] = [512, 384]
    rows.loc[nih[::11], "width"] = None
    rows.loc[nih[::13], ["protocol", "split"]] = ["native", "train"]
    rows.loc[nih[::3], "bit_depth"] = 12
    rows["display"] = rows["display"].astype(object)
    rows.loc[nih[::6], "display"] = "lung"
    first = rows.index[(rows["codec"] == "jpeg") & (rows["status"] == "ok")][0]
    rows.loc[first, "codec_kind"] = None
    matched = rows[rows["setting"].str.startswith("target:") & (rows["dataset"] == "nih")]
    only = matched.iloc[[0]].assign(image_id="matched-only", group_id="p-matched-only")
    return pd.concat([rows, only], ignore_index=True)  # an image the facts do not count


def test_the_facts_from_the_lines_are_the_facts_from_the_rows(tmp_path):
    from medbench.reports.run_rows import _facts_in_lines, _facts_in_store

    folder = write_store(tmp_path, _facts_rows())
    with sqlite3.connect(folder / STORE_NAME) as db:
        want = _facts_in_store(db, *report_rows_where(db, RUN_ID, "settings"))
        got = _facts_in_lines(db, RUN_ID)
    assert got == want
    nih = want["nih"]  # what the rows are there for did happen
    assert nih.sizes == 2 and nih.groups and len(nih.protocols) == 2 and nih.deep_windowed
    assert set(nih.depth_rows) == {8, 12} and nih.body_parts and nih.trained


def test_the_body_parts_images_counted_in_the_lines_are_those_of_the_rows(edge):
    from medbench.reports.bodyparts import body_parts_in_store

    with sqlite3.connect(edge / STORE_NAME) as db:
        where, params = report_rows_where(db, RUN_ID, "settings")
        want = body_parts_in_store(db, where, params)
        got = body_parts_in_store(db, where, params, None, RUN_ID)
    for a, b in zip(got, want):
        pd.testing.assert_frame_equal(a, b)
    assert set(want[0]["body_part"]) == {"CHEST", "HAND"} and want[0]["images"].gt(0).all()


def test_a_table_of_the_name_without_its_columns_is_not_read_and_is_rebuilt(tmp_path):
    """A hand-edited store whose lines table has the right name and count but not the
    columns: the report reads the rows, and the next writer builds the lines again."""
    folder = write_store(tmp_path, _unseen(scale_rows(copies=2)))
    path = folder / STORE_NAME
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        db.execute(f"DROP TABLE {lines.TABLE}")
        db.execute(f"CREATE TABLE {lines.TABLE} (run_id, rows)")
        db.execute(f"INSERT INTO {lines.TABLE} VALUES (?, ?)", (RUN_ID, rows))
    with sqlite3.connect(path) as db:
        assert kept_lines_where(db, RUN_ID) is None
    assert build_report(folder, tmp_path / "report").markdown["headline"]
    ResultsStore(path).close()
    with sqlite3.connect(path) as db:
        assert kept_lines_where(db, RUN_ID) is not None
    _same_lines(path)


def test_the_lines_keep_every_metric_and_maximum_the_means_read():
    from medbench.reports import means

    assert lines.METRICS == (*means.METRICS, *means.MORE_METRICS)
    assert lines.MAXIMA == ("max_abs_error", "batch_size", *means.COMPLEXITY)
    assert lines.PSNRS == means._PSNRS
    from medbench.reports.budget import SEPARATOR

    assert lines.SEPARATOR == SEPARATOR
