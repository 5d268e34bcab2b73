"""What a report reads of a run's rows, selected in the store, is what the frame of the
rows gives: facts per dataset, a curve's rows, model records, the images left out, body
parts, the training-budget inputs (``medbench report`` never holds a run's rows)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.store import ResultsStore
from medbench.reports.bodyparts import body_part_settings, body_part_table, body_parts_in_store
from medbench.reports.budget import budget_table, split_milestones
from medbench.reports.build import budget_inputs, load_run, row_selections
from medbench.reports.curves import curves
from medbench.reports.means import setting_means
from medbench.reports.run_rows import FrameRows, StoreRows
from medbench.reports.seen import leave_out_seen, seen_in_store
from medbench.reports.store_means import is_target, means_in_store
from medbench.reports.targets import target_rows
from tests.scale_rows import RUN_ID, write_store
from tests.test_store_means import _edge_rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The edge store (milestones, errors, seen images, body parts) open, its frame's
    report rows, and the SQL selections of the same rows."""
    folder = write_store(tmp_path_factory.mktemp("run-rows"), _edge_rows())
    kept = leave_out_seen(load_run(folder)[0])[0]
    rows = split_milestones(kept)[0]
    rows = rows.drop(index=target_rows(rows).index)
    store = ResultsStore.open_existing(folder)
    yield store, kept, rows, row_selections(store, RUN_ID)[0]
    store.close()


def _plain(value: object) -> object:
    return None if not isinstance(value, (list, set, dict, tuple)) and pd.isna(value) \
        else value


def test_facts_are_the_frames(run):
    store, _, rows, where = run
    frame, selected = FrameRows(rows), StoreRows(store, *where["settings"])
    assert selected.datasets() == frame.datasets() and frame.datasets()
    grouped = []
    for dataset in frame.datasets():
        want, got = vars(frame.facts(dataset)), vars(selected.facts(dataset))
        want["kinds"] = {k: _plain(v) for k, v in want["kinds"].items()}
        got["kinds"] = {k: _plain(v) for k, v in got["kinds"].items()}
        assert got == want
        assert want["rows"] == (rows["dataset"] == dataset).sum()
        grouped.append(want["groups"])
    assert any(grouped) and None in grouped  # patients on one dataset, none on the other
    assert selected.facts("no such dataset").rows == 0


def test_curve_rows_and_model_records_are_the_frames(run):
    store, _, rows, where = run
    frame, selected = FrameRows(rows), StoreRows(store, *where["settings"],
                                                 means=setting_means(rows))
    learned = 0
    for c in curves(rows):
        settings = list(c.points["setting"])
        want = frame.curve_rows(c.dataset, c.codec, c.train_dataset, settings)
        got = selected.curve_rows(c.dataset, c.codec, c.train_dataset, settings)
        assert len(want) and len(got) == len(want)
        for column in ("image_id", "setting", "group_id", "bpp", "psnr"):
            assert [_plain(v) for v in got[column]] == [_plain(v) for v in want[column]], \
                column
        infos = frame.model_infos(c.dataset, c.codec, c.train_dataset)
        assert [_plain(i) for i in selected.model_infos(c.dataset, c.codec,
                                                        c.train_dataset)] == \
            [_plain(i) for i in infos]
        learned += any(isinstance(i, str) and i for i in infos)
    assert learned  # the learned curves carried their records


def test_the_images_left_out_are_the_frames(run):
    store, *_ = run
    everything = load_run(store.path)[0]
    _, want, want_notes = leave_out_seen(everything)
    got, notes = seen_in_store(store, RUN_ID)
    assert len(want) and notes == want_notes
    assert got["image_id"].tolist() == want["image_id"].tolist()
    assert got["codec"].tolist() == want["codec"].tolist()


def _equal(want: pd.DataFrame, got: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns) and len(got) == len(want) and len(want)
    for column in want.columns:
        for a, b in zip(want[column], got[column]):
            if isinstance(a, float) and isinstance(b, float) and not (math.isnan(a)
                                                                     and math.isnan(b)):
                assert np.isclose(a, b, rtol=1e-9, atol=0), (column, a, b)
            else:
                assert _plain(a) == _plain(b), (column, a, b)


def test_body_parts_computed_in_the_store_are_the_frames(run):
    store, _, rows, where = run
    table, settings = store.compute(body_parts_in_store, *where["settings"])
    _equal(body_part_table(rows), table)
    _equal(body_part_settings(rows), settings)
    assert set(table["body_part"]) == {"CHEST", "HAND"}


def test_body_parts_in_the_reports_pass_are_the_frames_and_change_no_mean(run):
    """The report takes the body parts from its one pass over the rows: the same tables,
    and the setting means (intervals included) are what a pass without them gives, though
    patients with images of two body parts split the pass's patient lines."""
    store, _, rows, where = run
    keep = lambda key: not is_target(key[3])  # noqa: E731
    plain = store.compute(means_in_store, *where["all"], keep)
    found = store.compute(means_in_store, *where["all"], keep, "body_part",
                          lambda setting: not is_target(setting))
    pd.testing.assert_frame_equal(found.table, plain.table)
    assert found.groups.keys() == plain.groups.keys()
    for key, groups in plain.groups.items():
        pd.testing.assert_frame_equal(found.groups[key], groups)
    table, settings = store.compute(body_parts_in_store, *where["settings"], found.parts)
    _equal(body_part_table(rows), table)
    _equal(body_part_settings(rows), settings)
    nih = rows[(rows["dataset"] == "nih") & (rows["status"] == "ok")]
    assert (nih.groupby("group_id")["body_part"].nunique() > 1).any()  # the split happened
    assert not any(is_target(s) for s in settings["setting"])


def test_the_budget_inputs_give_the_frames_budget_table(run):
    store, kept, _, where = run
    milestones, anchors = budget_inputs(store, where)
    assert len(milestones) and anchors
    want = budget_table(kept)
    assert len(want)
    _equal(want, budget_table(milestones, anchors))


def test_a_report_reads_one_state_of_a_store_being_written(tmp_path):
    """``medbench report`` of a run in progress: its many queries all see the store as
    the first saw it, whatever the run's writer commits meanwhile."""
    import sqlite3

    folder = write_store(tmp_path, _edge_rows().head(50))
    writer = sqlite3.connect(folder / "results.sqlite")
    writer.execute("PRAGMA journal_mode=WAL")  # as a running run's store: a -wal file
    writer.execute("CREATE TABLE IF NOT EXISTS keep_open (x)")
    writer.commit()
    reader = ResultsStore.open_existing(folder)

    def count() -> int:
        return reader.compute(lambda db: db.execute("SELECT COUNT(*) FROM results")
                              .fetchone()[0])

    with reader.snapshot():
        before = count()
        writer.execute("UPDATE results SET image_id = image_id || '-moved', psnr = 0 "
                       "WHERE rowid IN (SELECT rowid FROM results LIMIT 5)")
        writer.execute("INSERT INTO results (run_id, dataset, image_id, codec, setting, "
                       "status) VALUES (?, 'nih', 'late-image', 'jpeg', 'q=1', 'ok')",
                       (RUN_ID,))
        writer.commit()
        assert count() == before  # the insert is not seen inside the snapshot
        assert len(reader.frame(RUN_ID)) == before
    assert count() == before + 1  # and is after it
    reader.close()
    writer.close()


def test_a_store_written_before_the_newer_columns_reports(tmp_path):
    """Every selection reads a column the store lacks as empty, as the frame did."""
    import sqlite3

    from medbench.reports.build import build_report
    from tests.scale_rows import as_older_store, scale_rows

    folder = write_store(tmp_path / "old", scale_rows(copies=3))
    db = sqlite3.connect(folder / "results.sqlite")
    as_older_store(db)
    for column in ("display_psnr", "display", "knob", "seen_in_training", "codec_kind",
                   "group_kind", "roi_psnr", "target_met", "target_note", "batch_size",
                   "params", "body_part", "model_info", "split", "protocol"):
        db.execute(f"ALTER TABLE results DROP COLUMN {column}")
    db.commit()
    db.close()
    report = build_report(folder, tmp_path / "report")
    assert "on 12 images at protocol unknown (256×256, 8-bit)" in report.markdown["headline"]
    assert report.markdown["body-parts"].startswith("No rows carry a body part")
