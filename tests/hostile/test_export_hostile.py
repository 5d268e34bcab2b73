"""``dicom-export`` and ``run --write-dicom`` attacked: sources changed or gone after the
run, one image that fails, a codec with no DICOM syntax, a folder holding an earlier
export, a folder that cannot be written, and a folder inside a dataset's own.

What is checked each time: nothing is written that the run did not score, one bad image
costs only its own files, ``index.csv`` lists every row, and a refusal is one line that
names the option the user typed.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from medbench.benchmark.store import STORE_NAME
from medbench.codecs.jpegls import JpegLsCodec
from tests.hostile.cli_helpers import QUICK, error_line, invoke, other_png, png_folder

NATIVE = ["--repeats", "0", "--protocol", "native", "--split", "all", "--no-progress",
          "--no-report"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, results) of a run of jpegls and png on three PNGs."""
    root = tmp_path_factory.mktemp("export")
    data = png_folder(root / "data")
    result = invoke("run", "--datasets", f"folder:{data}", "--codecs", "jpegls,png", *NATIVE,
                    "--out", root / "results")
    assert result.exit_code == 0, result.output
    return data, root / "results"


@pytest.fixture
def copied(finished, tmp_path) -> tuple[Path, Path]:
    """A copy of ``finished`` whose run reads its own copy of the data."""
    data, results = finished
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(results, tmp_path / "results")
    db = sqlite3.connect(tmp_path / "results" / STORE_NAME)
    db.execute("UPDATE runs SET arguments = replace(arguments, ?, ?)",
               (str(data), str(tmp_path / "data")))
    db.execute("UPDATE results SET dataset = replace(dataset, ?, ?)",
               (str(data), str(tmp_path / "data")))
    db.execute("UPDATE run_images SET dataset = replace(dataset, ?, ?), "
               "source = replace(source, ?, ?)",
               (str(data), str(tmp_path / "data"), str(data), str(tmp_path / "data")))
    db.commit()
    db.close()
    return tmp_path / "data", tmp_path / "results"


def _index(folder: Path) -> list[dict[str, str]]:
    with open(folder / "index.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _dicoms(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.dcm"))


def _export(results: Path, out: Path, *extra: object):
    return invoke("dicom-export", results, "--codec", "jpegls", "--out", out, *extra)


# -- wrong or mixed data ------------------------------------------------------------------
@pytest.mark.parametrize("recorded_streams", [True, False])
def test_a_source_changed_after_the_run_is_not_exported(copied, tmp_path, recorded_streams):
    data, results = copied
    if not recorded_streams:  # a run of an older version: only the file hash can tell
        db = sqlite3.connect(results / STORE_NAME)
        db.execute("UPDATE results SET stream_sha256 = NULL")
        db.commit()
        db.close()
    other_png(data / "im1.png")
    out = tmp_path / "dicom"
    result = _export(results, out)
    assert result.exit_code == 0, result.output
    assert "its source file" in result.output and "changed since run" in result.output
    assert not [name for name in _dicoms(out) if "im1" in name]  # no coded file, no reference
    assert len([name for name in _dicoms(out) if "reference_rle" in name]) == 2
    notes = {row["note"] for row in _index(out) if row["image_id"] == "im1"}
    assert len(notes) == 1 and "changed since run" in notes.pop()


def test_no_reference_beside_streams_that_did_not_match(copied, tmp_path):
    """A reference is the image the codecs were scored on: an image none of whose streams
    re-codes to the measured one gets none."""
    _, results = copied
    db = sqlite3.connect(results / STORE_NAME)
    db.execute("UPDATE results SET stream_sha256 = 'f00d' WHERE image_id = 'im2'")
    db.commit()
    db.close()
    out = tmp_path / "dicom"
    assert _export(results, out).exit_code == 0
    assert not [name for name in _dicoms(out) if "im2" in name]
    assert "reference_rle/im0.dcm" in "\n".join(_dicoms(out))


def test_overwrite_replaces_the_earlier_export(finished, tmp_path):
    data, results = finished
    out = tmp_path / "dicom"
    assert _export(results, out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    result = invoke("run", "--datasets", f"folder:{data}", "--codecs", "jpeg2000", "--split",
                    "all", "--limit", "1", "--seed", "1", *QUICK, "--no-report", "--out", other,
                    "--write-dicom", out, "--overwrite-dicom")
    assert result.exit_code == 0, result.output
    files = _dicoms(out)
    assert files and not [name for name in files if "jpegls" in name]  # the old series went
    assert {row["codec"] for row in _index(out)} == {"jpeg2000"}
    assert len({name.split("/")[-1] for name in files}) == 1  # one image, as this run
    assert (out / "notes.txt").read_text() == "mine"  # not the export's: kept


def test_write_dicom_into_a_dataset_folder_is_refused(finished, tmp_path):
    data, results = finished
    args = ["run", "--datasets", f"folder:{data}", "--codecs", "jpegls", *NATIVE]
    line = error_line(invoke(*args, "--out", tmp_path / "r1", "--write-dicom", data / "dicom"))
    assert f"--write-dicom {data / 'dicom'} lies inside the folder of dataset folder:{data}" \
        in line
    line = error_line(invoke(*args, "--out", data / "results"))
    assert "--out" in line and "lies inside the folder of dataset" in line
    line = error_line(_export(results, data / "dicom"))
    assert "--out" in line and "the next listing of that dataset would count" in line
    assert sorted(p.name for p in data.iterdir()) == ["im0.png", "im1.png", "im2.png"]
    assert not (tmp_path / "r1").exists()


def test_write_dicom_into_the_data_root_is_refused(tmp_path):
    root = tmp_path / "data"
    png_folder(root / "mxid" / "chest", count=2)
    line = error_line(invoke("run", "--datasets", "mxid", "--data-root", root, "--codecs",
                             "jpegls", *NATIVE, "--out", tmp_path / "r", "--write-dicom",
                             root))
    assert f"would write into {root / 'mxid'}, inside the folder of dataset mxid" in line


# -- late failures ---------------------------------------------------------------------------
def test_an_unusable_write_dicom_folder_is_refused_before_coding(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = tmp_path / "out"
    line = error_line(invoke("run", "--codecs", "jpegls", "--limit", "1", *QUICK, "--out", out,
                             "--write-dicom", blocker / "dicom"))
    assert line == (f"Error: cannot write into {blocker.resolve() / 'dicom'} "
                    f"({blocker.resolve()} is a file, not a folder); choose a writable "
                    "--write-dicom")
    assert not out.exists()  # refused before the run was recorded or coded


def _immutable(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available (a folder root cannot write is needed)")


def _mutable(folder: Path) -> None:
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_write_dicom_folder_is_refused_before_coding(tmp_path):
    frozen = tmp_path / "frozen"
    _immutable(frozen)
    try:
        line = error_line(invoke("run", "--codecs", "jpegls", "--limit", "1", *QUICK, "--out",
                                 tmp_path / "out", "--write-dicom", frozen / "dicom"))
    finally:
        _mutable(frozen)
    assert "is not writable" in line and line.endswith("choose a writable --write-dicom")
    assert not (tmp_path / "out").exists()


def test_write_dicom_with_no_dicom_codec_is_refused_before_coding(tmp_path):
    line = error_line(invoke("run", "--codecs", "png,webp", "--limit", "1", *QUICK, "--out",
                             tmp_path / "out", "--write-dicom", tmp_path / "dicom"))
    assert "none of the codecs png, webp writes a DICOM transfer syntax" in line
    assert not (tmp_path / "out").exists()


def test_one_image_that_fails_costs_only_its_files(finished, tmp_path, monkeypatch):
    _, results = finished
    encode = JpegLsCodec.encode

    def failing(self, image, setting):
        if image.image_id == "im1":
            raise RuntimeError("CharLS refused it")
        return encode(self, image, setting)

    monkeypatch.setattr(JpegLsCodec, "encode", failing)
    out = tmp_path / "dicom"
    result = _export(results, out)
    assert result.exit_code == 0, result.output
    assert "re-coding failed (RuntimeError: CharLS refused it)" in result.output
    assert not [name for name in _dicoms(out) if "im1" in name]
    assert len(_dicoms(out)) == 2 * 7
    rows = _index(out)
    assert len(rows) == 3 * 6  # every jpegls row of the run (6 settings, 3 images)
    assert {r["status"] for r in rows if r["image_id"] == "im1" and r["codec"] == "jpegls"} \
        == {"skipped"}


def test_a_source_gone_since_the_run_is_listed(copied, tmp_path):
    data, results = copied
    (data / "im0.png").unlink()
    out = tmp_path / "dicom"
    result = _export(results, out)
    assert result.exit_code == 0, result.output
    assert not [name for name in _dicoms(out) if "im0" in name]
    notes = {r["note"] for r in _index(out) if r["image_id"] == "im0"}
    assert notes == {"image im0 of folder:" + str(data) + " is no longer present in the "
                     "dataset, so it cannot be re-coded"}


# -- silence ---------------------------------------------------------------------------------
def test_an_export_that_writes_nothing_fails(finished, tmp_path):
    _, results = finished
    out = tmp_path / "dicom"
    result = invoke("dicom-export", results, "--codec", "png", "--out", out)
    line = error_line(result)
    assert result.exit_code == 1
    assert line == (f"Error: no DICOM file was written to {out}: its bitstream is no DICOM "
                    f"transfer syntax, so it cannot be encapsulated; {out / 'index.csv'} "
                    "lists every row")
    assert {r["status"] for r in _index(out)} == {"skipped"} and not _dicoms(out)


def test_the_refusal_names_the_option_of_the_command(finished, tmp_path):
    data, results = finished
    out = tmp_path / "dicom"
    out.mkdir()
    (out / "x.txt").write_text("x")
    line = error_line(invoke("run", "--datasets", f"folder:{data}", "--codecs", "jpegls",
                             *NATIVE, "--out", tmp_path / "r", "--write-dicom", out))
    assert line.endswith("pass --overwrite-dicom to replace what it holds")
    line = error_line(_export(results, out))
    assert line.endswith("pass --overwrite to replace what it holds")


def test_an_unfinished_run_is_said_to_be_partial(copied, tmp_path):
    _, results = copied
    db = sqlite3.connect(results / STORE_NAME)
    db.execute("UPDATE runs SET status = 'interrupted'")
    db.commit()
    db.close()
    result = _export(results, tmp_path / "dicom")
    assert result.exit_code == 0, result.output
    assert "is interrupted, not finished: only the cells it coded are exported" in result.output


def test_a_setting_that_is_no_target_names_setting(finished, tmp_path):
    _, results = finished
    line = error_line(invoke("dicom-export", results, "--codec", "jpegls", "--setting",
                             "target:junk", "--out", tmp_path / "dicom"))
    assert line == ("Error: --setting 'target:junk' names no target cell; write one target "
                    "as `run --target` made it, e.g. --setting target:ratio=10")
