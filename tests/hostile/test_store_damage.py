"""Damaged results stores: every command that opens one (report, compare, run, run --resume,
dicom-export) says so in one line, before it writes anything, and no damage reads as
fewer rows.

The damage is made the way it happens: a file cut short by a full disk or an interrupted
copy, pages overwritten, a zero-byte file, another program's SQLite file, a hand-edited
run, and a folder where the file should be.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from medbench.benchmark.store import STORE_NAME, ResultsStore
from tests.hostile.cli_helpers import QUICK, error_line, invoke, png_folder


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> Path:
    """A finished run's results folder (jpeg2000 and png on one sample tile)."""
    out = tmp_path_factory.mktemp("store") / "results"
    result = invoke("run", "--codecs", "jpeg2000,png", "--limit", "1", *QUICK, "--no-report",
                    "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _page_of(store: Path, name: str) -> int:
    db = sqlite3.connect(store)
    try:
        query = "SELECT rootpage FROM sqlite_master WHERE name = ?"
        return db.execute(query, (name,)).fetchone()[0]
    finally:
        db.close()


def _overwrite_page(store: Path, page: int, keep: int = 0) -> None:
    data = bytearray(store.read_bytes())
    start = (page - 1) * 4096 + keep
    data[start:page * 4096] = b"\x07" * (page * 4096 - start)
    store.write_bytes(bytes(data))


def _sql(store: Path, statement: str) -> None:
    db = sqlite3.connect(store)
    db.execute(statement)
    db.commit()
    db.close()


DAMAGE = {
    "garbage": lambda s: s.write_bytes(bytes(range(256)) * 64),
    "zero-bytes": lambda s: s.write_bytes(b""),
    "cut-short": lambda s: s.write_bytes(s.read_bytes()[: s.stat().st_size // 3]),
    # The results table's index: rows read through it silently vanished before.
    "broken-index": lambda s: _overwrite_page(s, _page_of(s, "sqlite_autoindex_results_1"),
                                              keep=100),
    "broken-table": lambda s: _overwrite_page(s, _page_of(s, "results")),
    "other-program": lambda s: (s.unlink(), _sql(s, "CREATE TABLE notes (text)")),
    "no-results-table": lambda s: _sql(s, "DROP TABLE results"),
}


def _damaged(sound: Path, tmp_path: Path, kind: str) -> Path:
    out = tmp_path / kind
    shutil.copytree(sound, out)
    DAMAGE[kind](out / STORE_NAME)
    return out


def _commands(out: Path, tmp_path: Path, sound: Path) -> dict[str, list]:
    return {
        "report": ["report", out, "--out", tmp_path / "report"],
        "compare": ["compare", out, sound],
        "run": ["run", "--codecs", "png", "--limit", "1", *QUICK, "--out", out],
        "resume": ["run", "--resume", "--out", out, "--no-progress"],
        "dicom-export": ["dicom-export", out, "--codec", "jpeg2000", "--out", tmp_path / "dcm"],
    }


@pytest.mark.parametrize("kind", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["report", "compare", "run", "resume", "dicom-export"])
def test_a_damaged_store_is_one_line_before_any_write(sound, tmp_path, kind, command):
    out = _damaged(sound, tmp_path, kind)
    before = (out / STORE_NAME).read_bytes()
    result = invoke(*_commands(out, tmp_path, sound)[command])
    line = error_line(result)
    assert result.exit_code == 1
    assert f"the results store {out / STORE_NAME} is damaged or not a medbench store" in line
    assert (out / STORE_NAME).read_bytes() == before  # no run row added, nothing repaired
    assert not (tmp_path / "report").exists() and not (tmp_path / "dcm").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in sound.iterdir())


@pytest.mark.parametrize("command", ["report", "resume", "dicom-export"])
def test_a_run_whose_arguments_are_not_json(sound, tmp_path, command):
    out = tmp_path / "edited"
    shutil.copytree(sound, out)
    _sql(out / STORE_NAME, "UPDATE runs SET arguments = '{codecs: png'")
    line = error_line(invoke(*_commands(out, tmp_path, sound)[command]))
    assert "are not JSON" in line and str(out / STORE_NAME) in line


@pytest.mark.parametrize("command", ["resume", "dicom-export"])
def test_a_run_whose_arguments_have_wrong_types(sound, tmp_path, command):
    out = tmp_path / "edited"
    shutil.copytree(sound, out)
    _sql(out / STORE_NAME, """UPDATE runs SET arguments = '{"codecs": 5}'""")
    line = error_line(invoke(*_commands(out, tmp_path, sound)[command]))
    assert "is damaged: its argument codecs is 5, not list[str] | None" in line


def test_a_folder_named_like_the_store(tmp_path):
    out = tmp_path / "out"
    (out / STORE_NAME).mkdir(parents=True)
    line = error_line(invoke("run", "--codecs", "png", "--limit", "1", *QUICK, "--out", out))
    assert f"{out / STORE_NAME} is a folder, not a results store" in line


def test_a_store_of_an_older_version_reads_its_rows(sound, tmp_path):
    """A store written before the newest columns existed (opened read-only, so they
    cannot be added) reads with those columns empty, not as an error."""
    out = tmp_path / "old"
    shutil.copytree(sound, out)
    _sql(out / STORE_NAME, "ALTER TABLE results DROP COLUMN codec_library")
    store = ResultsStore.open_existing(out)
    try:
        rows = store.frame()
    finally:
        store.close()
    assert len(rows) == 8 and rows["codec_library"].isna().all()
    result = invoke("compare", out, sound)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["report", "compare", "dicom-export"])
def test_damage_the_opening_check_misses_is_still_one_line(sound, tmp_path, monkeypatch,
                                                           command):
    """Reads of a store that passed its check (damage after opening, or damage the check
    cannot see) fail in one line too, not as pandas' or SQLite's traceback."""
    out = _damaged(sound, tmp_path, "broken-table")
    monkeypatch.setattr(ResultsStore, "_check", lambda self: None)
    line = error_line(invoke(*_commands(out, tmp_path, sound)[command]))
    assert "is damaged or not a medbench store (database disk image is malformed)" in line


@pytest.mark.parametrize("content", [b"\x00\xff not text\n\"open", b"hello\nworld\n"])
def test_a_damaged_split_manifest_is_one_line(tmp_path, content):
    """The manifests in the results folder are read by every later run (and --resume)."""
    data = png_folder(tmp_path / "data")
    args = ["run", "--datasets", f"folder:{data}", "--split", "all", "--codecs", "png",
            *QUICK, "--no-report", "--out", tmp_path / "out"]
    assert invoke(*args).exit_code == 0
    (manifest,) = (tmp_path / "out" / "manifests").iterdir()
    manifest.write_bytes(content)
    line = error_line(invoke(*args))
    assert line.startswith(f"Error: the split manifest {manifest} is damaged (")
    assert line.endswith("move it away to have the splits decided again by the same rule, "
                         "or restore it")
