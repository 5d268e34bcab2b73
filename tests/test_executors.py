"""Executors: the same rows in-process, in local worker processes and on Dask."""

from __future__ import annotations

import os
import signal
import sqlite3

import pandas as pd
import pytest

from medbench.benchmark.cells import Job, code_unit_by_name
from medbench.benchmark.executors import (
    InProcessExecutor,
    LocalPoolExecutor,
    cpu_count,
    make_executor,
)
from medbench.benchmark.rows import WorkUnit
from medbench.benchmark.runner import RunConfig, run
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.datasets import get_dataset
from medbench.datasets.manifest import choose_records
from medbench.datasets.protocols import PAPER
from medbench.errors import MedbenchError

KEY = ["dataset", "image_id", "codec", "setting"]
#: Columns that may differ between executors: timings, when, and which run.
VARYING = ["encode_ms", "decode_ms", "peak_mem_mb", "finished_at", "run_id"]


def config(**execution) -> RunConfig:
    return RunConfig(codecs=["jpeg", "jpeg2000"], datasets=["sample"], limit=2, repeats=0,
                     **execution)


def comparable(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=VARYING).sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The rows of the run coded in-process (local, 1 worker)."""
    rows = run(config(workers=1), tmp_path_factory.mktemp("ref")).rows
    assert len(rows) == 2 * 16 and (rows["status"] == "ok").all()
    return rows


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker Dask cluster on the loopback interface (1 thread each, no dashboard)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local:
        yield local


def test_local_worker_processes_give_the_same_rows(tmp_path, reference):
    result = run(config(workers=2), tmp_path)
    pd.testing.assert_frame_equal(comparable(result.rows), comparable(reference))
    info = ResultsStore.open_existing(tmp_path).run_info(result.run_id)
    assert info["arguments"]["workers"] == 2 and info["arguments"]["executor"] == "local"


def test_dask_local_cluster_gives_the_same_rows(tmp_path, reference):
    # No --scheduler: the executor starts (and stops) its own LocalCluster on 127.0.0.1.
    result = run(config(executor="dask", workers=2), tmp_path)
    pd.testing.assert_frame_equal(comparable(result.rows), comparable(reference))


def test_dask_scheduler_resume_codes_only_the_missing_cells(tmp_path, reference, cluster):
    scheduler = cluster.scheduler_address
    assert scheduler.startswith("tcp://127.0.0.1:")
    first = run(config(executor="dask", scheduler=scheduler), tmp_path)
    # Simulate a run cut short: drop the rows of one image and mark it interrupted.
    db = sqlite3.connect(tmp_path / STORE_NAME)
    with db:
        lost = db.execute("DELETE FROM results WHERE image_id IN "
                          "(SELECT DISTINCT image_id FROM results LIMIT 1)").rowcount
        db.execute("UPDATE runs SET status = 'interrupted'")
    db.close()
    assert lost == 16

    resumed = run(config(executor="dask", scheduler=scheduler), tmp_path, resume=True)
    assert resumed.run_id == first.run_id
    assert not resumed.rows.duplicated(KEY).any()
    pd.testing.assert_frame_equal(comparable(resumed.rows), comparable(reference))


def test_a_lost_dask_worker_s_units_are_retried(cluster):
    dataset = get_dataset("sample")
    records = choose_records(dataset, "all", 8)
    cells = (("jpeg2000", "ratio=10"), ("jpeg2000", "lossless"), ("jpeg", "q=50"))
    units = [WorkUnit("sample", record, cells) for record in records]
    job = Job(None, PAPER, 3, "medbench-models", "cpu")
    executor = make_executor("dask", scheduler=cluster.scheduler_address)
    killer = executor.client
    try:
        stream = executor.rows(job, units, {}, {})
        rows = [next(stream)]
        # Kill one worker process while units are queued on it; its nanny restarts it.
        victim = sorted(killer.scheduler_info()["workers"])[0]
        pid = killer.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        rows.extend(stream)
    finally:
        executor.close()
    assert len(rows) == len(units) * len(cells)
    assert {(r.image_id, r.codec, r.setting) for r in rows} == {
        (u.record.image_id, c, s) for u in units for c, s in cells
    }
    assert [r.error for r in rows if r.status != "ok"] == []


def test_worker_processes_cap_their_threads():
    import torch

    executor = LocalPoolExecutor(workers=2)
    assert executor.threads == max(1, cpu_count() // 2)
    with executor._pool() as pool:
        threads = pool.submit(torch.get_num_threads).result(timeout=120)
    assert threads == executor.threads


def test_make_executor_choices_and_errors():
    assert isinstance(make_executor("local", 1), InProcessExecutor)
    pool = make_executor("local", 3)
    assert isinstance(pool, LocalPoolExecutor) and pool.workers == 3
    with pytest.raises(MedbenchError, match="unknown executor"):
        make_executor("slurm")
    with pytest.raises(MedbenchError, match="--scheduler needs --executor dask"):
        make_executor("local", 2, "tcp://127.0.0.1:8786")
    with pytest.raises(MedbenchError, match="at least 1"):
        make_executor("local", 0)


def test_an_unreadable_image_becomes_error_rows_in_a_worker(tmp_path):
    from medbench.datasets.base import Record

    bad = Record("nope", "nope", "RG1_UNCR.dcm#r99c99", {"file": "missing.dcm", "row": 0,
                                                         "col": 0, "body_part": "CHEST"})
    job = Job(None, PAPER, 0, str(tmp_path), "cpu")
    rows = code_unit_by_name(
        job, WorkUnit("sample", bad, (("jpeg", "q=50"), ("no-such-codec", "x"))))
    assert [r.status for r in rows] == ["error", "error"]
    assert all("image could not be read" in r.error for r in rows)
    assert rows[0].codec_kind == "classical"
