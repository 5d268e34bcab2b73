"""Folders a command writes into that it cannot use: refused in one line before the
work (a report, a training, an export), never a traceback after it.

Read-only folders are made with ``chattr +i`` (root ignores permissions; the test is
skipped where chattr cannot be used), or a path under a regular file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from medbench.reports import build
from tests.hostile.cli_helpers import QUICK, error_line, invoke, png_folder


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("outputs") / "results"
    assert invoke("run", "--codecs", "png", "--limit", "1", *QUICK, "--no-report",
                  "--out", out).exit_code == 0
    return out


@pytest.fixture
def frozen(tmp_path):
    """An existing folder nobody (root included) can create files in."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_report_into_a_read_only_folder(results, frozen):
    line = error_line(invoke("report", results, "--out", frozen))
    assert line.startswith(f"Error: cannot write into {frozen} ({frozen} is not writable")
    assert line.endswith("choose a writable --out")


def test_report_under_a_file(results, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = error_line(invoke("report", results, "--out", blocker / "report"))
    assert f"({blocker} is a file, not a folder); choose a writable --out" in line


def test_report_whose_folder_fails_while_writing(results, tmp_path, monkeypatch):
    """The disk fills (or the folder is made read-only) half-way: one line, no traceback."""
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build, "rd_figure", full)
    line = error_line(invoke("report", results, "--out", tmp_path / "report", "--no-visual"))
    assert line == (f"Error: cannot write the report into {tmp_path / 'report'} (No space left "
                    "on device); choose a writable --out with free space")


def test_report_into_a_dataset_folder(tmp_path):
    data = png_folder(tmp_path / "data")
    assert invoke("run", "--datasets", f"folder:{data}", "--split", "all", "--codecs", "png",
                  *QUICK, "--no-report", "--out", tmp_path / "r").exit_code == 0
    line = error_line(invoke("report", tmp_path / "r", "--out", data / "report"))
    assert "--out" in line and f"lies inside the folder of dataset folder:{data}" in line
    assert sorted(p.name for p in data.iterdir()) == ["im0.png", "im1.png", "im2.png"]


def test_train_into_an_unusable_models_folder(tmp_path, frozen):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = ["train", "--model", "ae", "--dataset", "sample", "--steps", "1", "--device", "cpu"]
    line = error_line(invoke(*base, "--models", blocker / "models"))
    assert line.endswith(f"({blocker} is a file, not a folder); choose a writable --models")
    line = error_line(invoke(*base, "--models", frozen / "models"))
    assert "is not writable" in line and line.endswith("choose a writable --models")


def test_datasets_export_into_unusable_folders(tmp_path, frozen):
    line = error_line(invoke("datasets", "export", "sample", "--limit", "1", "--out", frozen))
    assert "is not writable" in line and line.endswith("choose a writable --out")
    data = png_folder(tmp_path / "data")
    line = error_line(invoke("datasets", "export", f"folder:{data}", "--split", "all",
                             "--out", data / "look"))
    assert "lies inside the folder of dataset" in line
    assert not (data / "look").exists()


def test_datasets_export_again_replaces_the_earlier_export(tmp_path):
    out = tmp_path / "look"
    assert invoke("datasets", "export", "sample", "--limit", "3", "--out", out).exit_code == 0
    (out / "mine.txt").write_text("x")
    again = invoke("datasets", "export", "sample", "--split", "train", "--limit", "1",
                   "--out", out)
    assert again.exit_code == 0, again.output
    assert "replaced the earlier export" in again.output
    assert sorted(p.suffix for p in out.iterdir()) == [".csv", ".png", ".txt"]
