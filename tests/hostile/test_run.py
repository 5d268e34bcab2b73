"""Hostile runs: changed and vanished files on resume, two runs in one folder, signals,
crashing codecs, broken or full stores, odd ``--codecs`` values.

Every case checks what a user relies on: no lost or duplicated row (rows counted per
key), no traceback on the console, no process left behind, and the run's status.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import medbench
from medbench.benchmark.runner import RunConfig, run
from medbench.benchmark.store import KEY, STORE_NAME, ResultsStore
from medbench.cli import main
from medbench.codecs import registry
from tests.fixture_formats import picture, write_png

SRC = str(Path(medbench.__file__).resolve().parents[1])
TIMEOUT = 60  # seconds a signalled run may take to end (generous: CI machines are busy)

PLUGIN = """
    import os
    import time

    from medbench.codecs.jpeg import JpegCodec

    class SlowJpeg(JpegCodec):
        '''Takes a while per cell, so a run can be signalled while it codes.'''
        name = "slow-jpeg"

        def settings(self):
            return ["q=50"]

        def encode(self, image, setting):
            time.sleep(float(os.environ.get("SLOW_JPEG_SECONDS", "0.5")))
            return super().encode(image, setting)

    class CrashingJpeg(JpegCodec):
        '''Kills its process on one cell (image CRASH_IMAGE, setting q=50), as a
        segfaulting native library would.'''
        name = "crashing-jpeg"

        def settings(self):
            return ["q=50", "q=90"]

        def encode(self, image, setting):
            if image.image_id == os.environ.get("CRASH_IMAGE") and setting == "q=50":
                os._exit(3)
            return super().encode(image, setting)
"""


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Codec plugins that this process and spawned workers (via PYTHONPATH) can import."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hostile_codecs.py").write_text(textwrap.dedent(PLUGIN))
    info = folder / "hostile_codecs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-codecs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[medbench.codecs]\nslow-jpeg = hostile_codecs:SlowJpeg\n"
        "crashing-jpeg = hostile_codecs:CrashingJpeg\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), SRC]))
    registry.reset()
    yield folder
    registry.reset()


def png_folder(root: Path, names: list[str], size: int = 32) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        write_png(root / name, picture((size, size), 8, seed))
    return root


def store_rows(out: Path) -> pd.DataFrame:
    store = ResultsStore.open_existing(out)
    try:
        return store.frame()
    finally:
        store.close()


def run_statuses(out: Path) -> list[str]:
    store = ResultsStore.open_existing(out)
    try:
        return [status for _, status in store.runs()]
    finally:
        store.close()


def assert_one_row_per_key(rows: pd.DataFrame) -> None:
    counts = rows.groupby(list(KEY)).size()
    assert (counts == 1).all(), counts[counts != 1]


def assert_clean_console(text: str) -> None:
    assert "Traceback" not in text, text


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "medbench.cli", "run", "--no-progress", "--no-report",
               *args]
    return subprocess.Popen(command, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


# -- resume: changed, added and vanished files (items 3 and 7) ------------------------------
def test_resume_recodes_an_image_whose_file_changed(tmp_path):
    data = png_folder(tmp_path / "data", ["a.png", "b.png", "c.png"])
    out = tmp_path / "out"
    config = RunConfig(codecs=["jpeg"], datasets=[f"folder:{data}"], split="all", repeats=0,
                       protocol="native")
    first = run(config, out).rows
    write_png(data / "b.png", picture((48, 40), 8, seed=9))  # same name, another image
    messages: list[str] = []
    rows = run(config, out, resume=True, echo=messages.append).rows
    assert_one_row_per_key(rows)
    assert len(rows) == len(first)
    changed = rows[rows["image_id"].str.contains("b")]
    assert set(changed["height"]) == {48} and set(changed["width"]) == {40}
    assert any("changed since run" in m and "b.png" in m for m in messages), messages
    # A second resume finds nothing changed: nothing is deleted or coded again.
    messages.clear()
    again = run(config, out, resume=True, echo=messages.append).rows
    assert not any("changed" in m for m in messages)
    assert list(again["finished_at"]) == list(rows["finished_at"])


def test_limit_resume_codes_the_images_first_chosen(tmp_path):
    data = png_folder(tmp_path / "data", ["b.png", "c.png", "d.png"])
    out = tmp_path / "out"
    config = RunConfig(codecs=["jpeg"], datasets=[f"folder:{data}"], split="all", limit=2,
                       repeats=0)
    first = run(config, out)
    chosen = set(first.rows["image_id"])
    assert len(chosen) == 2
    # Interrupted before one image was coded; then a file that sorts first is added and
    # that image's file is deleted.
    gone = sorted(chosen)[1]
    with sqlite3.connect(out / STORE_NAME) as db:
        db.execute("DELETE FROM results WHERE image_id = ?", (gone,))
        db.execute("UPDATE runs SET status = 'interrupted'")
    db.close()
    write_png(data / "a.png", picture((32, 32), 8, seed=7))
    (data / f"{gone}.png").unlink()
    messages: list[str] = []
    rows = run(config, out, resume=True, echo=messages.append).rows
    assert_one_row_per_key(rows)
    assert set(rows["image_id"]) == chosen  # not the added a.png
    lost = rows[rows["image_id"] == gone]
    assert len(lost) == len(first.rows[first.rows["image_id"] == gone])
    assert (lost["status"] == "error").all()
    assert (lost["error"] == "file no longer present").all()
    assert any("no longer present" in m for m in messages), messages
    assert run_statuses(out) == ["finished"]


# -- two runs into one folder (item 8) -------------------------------------------------------
def test_a_second_run_into_one_folder_is_announced_and_exported(tmp_path):
    out = tmp_path / "out"
    common = ["--datasets", "sample", "--limit", "1", "--repeats", "0", "--out", str(out),
              "--no-progress"]
    first = invoke("run", "--codecs", "jpeg", "--no-report", *common)
    assert first.exit_code == 0, first.output
    second = invoke("run", "--codecs", "png", *common)
    assert second.exit_code == 0, second.output
    assert "already holds run" in second.output and "added beside it" in second.output
    assert_clean_console(second.output)
    csv = pd.read_csv(out / "results.csv")
    assert set(csv["codec"]) == {"png"} and csv["run_id"].nunique() == 1
    assert len(run_statuses(out)) == 2
    metadata = (out / "report" / "report.md").read_text()
    assert "this store holds 2 runs; this report shows run " + csv["run_id"][0] in metadata


# -- --codecs and --datasets (item 15) ------------------------------------------------------
def test_repeated_codecs_are_coded_once(tmp_path):
    result = invoke("run", "--codecs", "jpeg,jpeg, jpeg", "--limit", "1", "--repeats", "0",
                    "--out", str(tmp_path), "--no-progress", "--no-report")
    assert result.exit_code == 0, result.output
    rows = store_rows(tmp_path)
    assert_one_row_per_key(rows)
    assert set(rows["codec"]) == {"jpeg"}


@pytest.mark.parametrize("args", [["--codecs", ","], ["--codecs", "jpeg,"],
                                  ["--datasets", ","], ["--datasets", "sample,,sample"]])
def test_empty_names_are_refused(tmp_path, args):
    result = invoke("run", *args, "--out", str(tmp_path), "--no-progress")
    assert result.exit_code == 1
    assert "got an empty name" in result.output
    assert_clean_console(result.output)
    assert not (tmp_path / STORE_NAME).exists()


# -- broken, read-only and full stores (item 14) --------------------------------------------
def test_reports_and_compare_read_a_read_only_store(tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--codecs", "jpeg", "--limit", "1", "--repeats", "0", "--out",
                  str(out), "--no-progress", "--no-report").exit_code == 0
    for path in out.rglob("*"):
        path.chmod(0o444 if path.is_file() else 0o555)
    out.chmod(0o555)
    try:
        before = sorted(p.name for p in out.iterdir())
        compared = invoke("compare", str(out), str(out))
        assert compared.exit_code == 0, compared.output
        reported = invoke("report", str(out), "--out", str(tmp_path / "report"))
        assert reported.exit_code == 0, reported.output
        assert sorted(p.name for p in out.iterdir()) == before  # nothing written beside it
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize("command", ["run", "report", "compare"])
def test_a_corrupt_store_is_one_line(tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / STORE_NAME).write_bytes(bytes(range(256)) * 64)
    args = {"run": ["run", "--codecs", "jpeg", "--limit", "1", "--out", str(out),
                    "--no-progress"],
            "report": ["report", str(out)], "compare": ["compare", str(out), str(out)]}
    result = invoke(*args[command])
    assert result.exit_code == 1
    # Progress lines may come first; the failure itself is one line, the last.
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and STORE_NAME in lines[0], lines
    assert result.output.strip().splitlines()[-1] == lines[0]
    assert_clean_console(result.output)


def test_an_unwritable_out_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("run", "--codecs", "jpeg", "--limit", "1", "--out", str(blocker / "out"),
                    "--no-progress")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith("Error: cannot write the results store")
    assert not (blocker / "out").exists()
    assert_clean_console(result.output)


class _FullDisk:
    """A connection whose writes of result rows fail after ``rows`` of them."""

    def __init__(self, db: sqlite3.Connection, rows: int):
        self._db, self._rows = db, rows

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT OR REPLACE INTO results"):
            if self._rows == 0:
                raise sqlite3.OperationalError("database or disk is full")
            self._rows -= 1
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, rows):
        rows = list(rows)
        if sql.startswith("INSERT OR REPLACE INTO results"):
            if self._rows < len(rows):  # a batch that does not fit fails whole
                raise sqlite3.OperationalError("database or disk is full")
            self._rows -= len(rows)
        return self._db.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._db, name)

    def __enter__(self):
        return self._db.__enter__()

    def __exit__(self, *exc):
        return self._db.__exit__(*exc)


def test_a_full_disk_interrupts_the_run_and_resume_continues(tmp_path, monkeypatch):
    out = tmp_path / "out"
    args = ["run", "--codecs", "jpeg", "--limit", "2", "--repeats", "0", "--out", str(out),
            "--no-progress", "--no-report"]
    opened = ResultsStore._open_for_writing

    def full_after_three(self):
        opened(self)
        self._db = _FullDisk(self._db, rows=3)

    with monkeypatch.context() as patch:
        patch.setattr(ResultsStore, "_open_for_writing", full_after_three)
        result = invoke(*args)
    assert result.exit_code == 1
    assert "Error: could not write to the results store" in result.output
    assert "database or disk is full" in result.output and "--resume" in result.output
    assert_clean_console(result.output)
    assert run_statuses(out) == ["interrupted"]
    # What was committed before the disk filled is kept; rows arriving together are
    # committed together (runner._Writer), so a batch that did not fit is coded again.
    assert 1 <= len(store_rows(out)) <= 3
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    rows = store_rows(out)
    assert_one_row_per_key(rows)
    assert len(rows) == 2 * rows["setting"].nunique()
    assert run_statuses(out) == ["finished"]


# -- crashing codecs (item 17) ----------------------------------------------------------------
def test_in_process_crash_becomes_an_error_row_on_resume(tmp_path, plugins):
    out = tmp_path / "out"
    args = ["--codecs", "crashing-jpeg", "--limit", "3", "--repeats", "0", "--workers", "1",
            "--out", str(out)]
    env = {"CRASH_IMAGE": "rg1_r4c4"}  # one of the seeded --limit 3 sample
    died = cli(*args, env=env)
    _, err = died.communicate(timeout=300)
    assert died.returncode == 3, err
    assert run_statuses(out) == ["running"]  # the process died: nobody could mark it
    resumed = cli(*args, "--resume", env=env)
    output, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "was being coded when the process died" in err
    assert "Traceback" not in output + err
    rows = store_rows(out)
    assert_one_row_per_key(rows)
    assert len(rows) == 3 * 2
    bad = rows[rows["status"] == "error"]
    assert list(zip(bad["image_id"], bad["setting"])) == [("rg1_r4c4", "q=50")]
    assert bad["error"].iloc[0].startswith("the process died while coding this cell")
    assert run_statuses(out) == ["finished"]


def test_a_pool_charges_only_the_crashing_cell(tmp_path, plugins, monkeypatch):
    monkeypatch.setenv("CRASH_IMAGE", "rg1_r4c4")
    config = RunConfig(codecs=["crashing-jpeg"], limit=3, repeats=0, workers=2)
    rows = run(config, tmp_path / "out").rows
    assert_one_row_per_key(rows)
    assert len(rows) == 3 * 2
    bad = rows[rows["status"] == "error"]
    assert list(zip(bad["image_id"], bad["setting"])) == [("rg1_r4c4", "q=50")]
    assert "worker process died" in bad["error"].iloc[0]


# -- signals (item 9) --------------------------------------------------------------------------
def _wait_for_rows(out: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with sqlite3.connect(f"{(out / STORE_NAME).as_uri()}?mode=ro", uri=True) as db:
                if db.execute("SELECT count(*) FROM results").fetchone()[0]:
                    return
        except sqlite3.Error:  # not created yet
            pass
        time.sleep(0.05)
    raise AssertionError("no row appeared")


def _marked(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (the run and all it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def _assert_nothing_left(marker: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(marker) == []


pytestmark_linux = pytest.mark.skipif(not Path("/proc/self/environ").exists(),
                                      reason="needs /proc to find left-over processes")


@pytestmark_linux
@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGINT, 2), (signal.SIGTERM, 2),
                                              (signal.SIGTERM, 1)])
def test_a_signal_ends_the_run_cleanly(tmp_path, plugins, sig, workers):
    out = tmp_path / "out"
    marker = f"MEDBENCH_TEST_MARKER={uuid.uuid4().hex}"
    name, value = marker.split("=")
    process = cli("--codecs", "slow-jpeg", "--limit", "8", "--repeats", "0", "--workers",
                  str(workers), "--out", str(out), env={name: value, "SLOW_JPEG_SECONDS": "1"},
                  start_new_session=True)
    _wait_for_rows(out, process)
    if sig == signal.SIGINT:  # Ctrl-C in a terminal: the whole process group, twice
        os.killpg(process.pid, sig)
        time.sleep(0.2)
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    output, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 128 + sig, err
    assert "Traceback" not in output + err, err
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("Interrupted.")
    assert err.count("Interrupted") == 1
    assert run_statuses(out) == ["interrupted"]
    assert_one_row_per_key(store_rows(out))
    _assert_nothing_left(marker)


@pytestmark_linux
def test_kill_9_of_the_parent_takes_its_workers_along(tmp_path, plugins):
    out = tmp_path / "out"
    marker = f"MEDBENCH_TEST_MARKER={uuid.uuid4().hex}"
    name, value = marker.split("=")
    args = ["--codecs", "slow-jpeg", "--limit", "4", "--repeats", "0", "--out", str(out)]
    process = cli(*args, "--workers", "2", env={name: value, "SLOW_JPEG_SECONDS": "1"})
    _wait_for_rows(out, process)
    process.kill()
    process.communicate(timeout=TIMEOUT)
    _assert_nothing_left(marker)
    resumed = cli(*args, "--workers", "1", "--resume", env={"SLOW_JPEG_SECONDS": "0"})
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    rows = store_rows(out)
    assert_one_row_per_key(rows)
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    assert run_statuses(out) == ["finished"]


# -- library messages ---------------------------------------------------------------------------
def test_pydicom_and_dask_messages_stay_off_the_console(monkeypatch, capsys, caplog):
    import logging
    import warnings

    from medbench.benchmark.executors import quiet_library_messages

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    for name in ("pydicom", "distributed"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    quiet_library_messages()
    assert logging.getLogger("pydicom").level == logging.ERROR  # its own warning logs
    assert logging.getLogger("distributed").level == logging.ERROR
    caplog.set_level(logging.DEBUG, logger="pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn_explicit("End of file reached", UserWarning,
                               os.path.join(os.sep, "x", "pydicom", "filereader.py"), 1)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "UserWarning: End of file reached")]
    assert "End of file" not in capsys.readouterr().err
