"""The store's batched writes and the per-image counts ``--resume`` reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medbench.benchmark import runner
from medbench.benchmark.rows import ResultRow
from medbench.benchmark.store import STORE_NAME, ResultsStore


def _rows(run_id: str, images: int = 3, settings: int = 4) -> list[ResultRow]:
    return [ResultRow(run_id=run_id, dataset="d", image_id=f"i{i}", codec="jpeg",
                      setting=f"q={s}", bpp=0.1 * (s + 1), psnr=30.0 + s, status="ok")
            for i in range(images) for s in range(settings)]


def test_rows_written_together_are_the_rows_written_one_by_one(tmp_path):
    frames = []
    for name, many in (("one", False), ("many", True)):
        store = ResultsStore(tmp_path / name / STORE_NAME)
        run_id = store.new_run({}, {})
        rows = _rows(run_id)
        if many:
            store.write_many(rows)
        else:
            for row in rows:
                store.write(row)
        frames.append(store.frame(run_id).drop(columns=["run_id", "finished_at"]))
        store.close()
    pd.testing.assert_frame_equal(*frames)


def test_resume_counts_each_images_finished_cells_in_the_store(tmp_path):
    store = ResultsStore(tmp_path / STORE_NAME)
    run_id = store.new_run({}, {})
    rows = _rows(run_id)
    store.write_many(rows[:6])  # i0 complete, i1 half done, i2 not started
    assert store.finished_by_image(run_id) == {("d", "i0"): 4, ("d", "i1"): 2}
    assert store.finished_cells_of(run_id, "d", "i1") == {("jpeg", "q=0"), ("jpeg", "q=1")}
    assert store.finished_cells_of(run_id, "d", "i2") == set()


class _CountingStore:
    def __init__(self):
        self.commits: list[int] = []

    def write_many(self, rows):
        self.commits.append(len(list(rows)))


def test_the_writer_commits_rows_arriving_together_in_one_transaction(monkeypatch):
    store = _CountingStore()
    now = [100.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    writer = runner._Writer(store)
    rows = _rows("r", images=1, settings=4)
    for row in rows:  # four rows within half a second of the last commit: held
        now[0] += 0.1
        writer.add(row)
    assert store.commits == []
    now[0] += 1.0
    writer.add(rows[0])  # over half a second after the last commit: all five together
    assert store.commits == [5]
    writer.flush()  # nothing left: no empty transaction
    assert store.commits == [5]


def test_rows_arriving_slowly_are_each_committed_at_once(monkeypatch):
    store = _CountingStore()
    now = [0.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    writer = runner._Writer(store)
    for row in _rows("r", images=1, settings=3):
        now[0] += 10.0
        writer.add(row)
    assert store.commits == [1, 1, 1]


def test_the_file_is_read_ahead_in_order_before_its_check(tmp_path, monkeypatch):
    """quick_check walks B-trees in key order, a random read a page on a file not in
    memory: the file is first read in order (sendfile), where it fits in free memory."""
    from medbench.benchmark import store as store_module

    path = tmp_path / STORE_NAME
    ResultsStore(path).close()
    if not hasattr(store_module.os, "sendfile") or not Path("/proc/meminfo").exists():
        pytest.skip("not Linux: nothing is read ahead, the check is as it was")
    assert store_module.read_ahead(path)
    assert not store_module.read_ahead(tmp_path / "missing.sqlite")
    read = []
    monkeypatch.setattr(store_module.os, "sendfile",
                        lambda out, src, offset, count: read.append((offset, count)) or count)
    ResultsStore.open_existing(tmp_path).close()
    assert read == [(0, path.stat().st_size)]
    read.clear()
    monkeypatch.setattr(store_module, "_free_memory", lambda: path.stat().st_size)
    assert not store_module.read_ahead(path) and not read  # would not fit: left alone


def test_a_report_checks_its_store_once(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from medbench.cli import main
    from tests.scale_rows import scale_rows, write_store

    folder = write_store(tmp_path / "run", scale_rows(copies=2))
    checks = []
    real = ResultsStore._check
    monkeypatch.setattr(ResultsStore, "_check", lambda self: checks.append(1) or real(self))
    result = CliRunner().invoke(main, ["report", str(folder), "--no-visual"])
    assert result.exit_code == 0, result.output
    assert len(checks) == 1
