"""Hostile command lines: an option given twice, empty values, and options that would do
nothing with the others given. Each is refused before any work, in one ``Error:`` line,
on every command (not only ``run --target``, where it was found)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.hostile.cli_helpers import QUICK, error_line, invoke, png_folder


@pytest.mark.parametrize("args, said", [
    (["run", "--target", "ratio=10", "--target", "bpp=0.5"],
     "--target was given twice (--target 'ratio=10' and --target 'bpp=0.5'); give it once; "
     "to give both, list them in one: --target ratio=10,bpp=0.5"),
    (["run", "--codecs", "jpeg", "--codecs=png"], "--codecs was given twice"),
    (["run", "--out", "a", "--out", "b"], "--out was given twice"),
    (["run", "--no-report", "--report"], "--no-report was given twice (--no-report and --report)"),
    (["report", "x", "--run", "a", "--run", "b"], "--run was given twice"),
    (["dicom-export", "x", "--codec", "jpegls", "--codec", "jpeg2000", "--out", "d"],
     "--codec was given twice"),
    (["train", "--model", "ae", "--dataset", "sample", "--steps", "1", "--steps", "2"],
     "--steps was given twice"),
    (["datasets", "export", "sample", "--out", "a", "--limit", "1", "--limit", "2"],
     "--limit was given twice"),
])
def test_an_option_given_twice_is_refused(tmp_path, monkeypatch, args, said):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2
    assert said in error_line(result)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_the_same_value_twice_is_one_value(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", "--codecs", "png", "--codecs", "png", "--limit", "1", *QUICK,
                    "--no-report", "--no-report", "--out", out)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args, said", [
    (["run", "--target", ""], "Invalid value for '--target': '' is empty"),
    (["run", "--out", " "], "Invalid value for '--out': ' ' is empty"),
    (["run", "--write-dicom="], "Invalid value for '--write-dicom': '' is empty"),
    (["run", "--scheduler", ""], "Invalid value for '--scheduler'"),
    (["report", ""], "RESULTS_DIR is empty"),
    (["report", "results", "--run", ""], "Invalid value for '--run'"),
    (["compare", "a.csv", ""], "NEW is empty"),
    (["dicom-export", "results", "--codec", "jpegls", "--setting", "", "--out", "d"],
     "Invalid value for '--setting'"),
    (["train", "--model", "ae", "--dataset", "sample", "--budget", ""],
     "Invalid value for '--budget'"),
    (["train", "--model", "ae", "--dataset", "sample", "--init", ""],
     "Invalid value for '--init'"),
    (["datasets", "show", ""], "NAME is empty"),
    (["datasets", "--data-root", "", "show", "sample"], "Invalid value for '--data-root'"),
])
def test_an_empty_value_is_refused(tmp_path, monkeypatch, args, said):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2
    assert said in error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_data_root_variable_is_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDBENCH_DATA", "")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jsrt").mkdir()  # would be found if "" meant the current folder
    result = invoke("run", "--datasets", "jsrt", "--codecs", "png", *QUICK)
    assert "needs --data-root" in error_line(result)


def test_datasets_data_root_given_to_group_and_subcommand(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    result = invoke("datasets", "--data-root", one, "show", "jsrt", "--data-root", two)
    assert result.exit_code == 2
    assert "--data-root was given twice" in error_line(result)


@pytest.mark.parametrize("command", [
    ["run", "--codecs", "png", "--limit", "1", *QUICK],
    ["datasets", "export", "sample", "--limit", "1"],
    ["train", "--model", "ae", "--dataset", "sample", "--limit", "2", "--steps", "1",
     "--device", "cpu", "--models"],
])
def test_a_negative_seed_is_refused(tmp_path, command):
    """numpy refuses a negative seed deep inside the sample draw, as a traceback."""
    result = invoke(*command, tmp_path / "out", "--seed", "-1") if command[0] == "train" \
        else invoke(*command, "--out", tmp_path / "out", "--seed", "-1")
    assert result.exit_code == 2
    assert "Invalid value for '--seed': -1 is not in the range x>=0" in error_line(result)
    assert not (tmp_path / "out").exists()


def test_contradicting_options_are_refused(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", "--codecs", "png", *QUICK, "--out", out, "--limit", "1",
                    "--no-cache", "--cache-dir", "c")
    assert "--cache-dir goes unused with --no-cache" in error_line(result)
    assert not out.exists()


@pytest.mark.parametrize("extra, said", [
    (["--overwrite-dicom"], "--overwrite-dicom only applies with --write-dicom DIR"),
    (["--seed", "3"], "--seed only chooses the --limit sample"),
    (["--limit", "1", "--milestones"], "--milestones acts on learned codecs, and none of the "
                                       "codecs png is one"),
    (["--limit", "1", "--train-missing"], "--train-missing acts on learned codecs"),
    (["--limit", "1", "--learned-batch", "4"], "--learned-batch acts on learned codecs"),
    (["--limit", "1", "--device", "cpu"], "--device acts on learned codecs"),
])
def test_an_option_that_would_do_nothing_is_said_not_ignored(tmp_path, extra, said):
    """Harmless (the run is what it would be without it), so the run goes on, but the
    option's uselessness is said on the console, never passed over in silence."""
    out = tmp_path / "out"
    result = invoke("run", "--codecs", "png", *QUICK, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    assert f"note: {said}" in result.output


def test_workers_with_a_scheduler_is_said_not_ignored():
    from medbench.cli import _check_combinations

    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        _check_combinations({"workers"}, False, None, None, False, "tcp://h:1")
    assert b"note: --workers starts that many local Dask workers" in err.getvalue()


def test_a_run_with_no_image_to_code_is_refused(tmp_path):
    """Three one-image groups hash to train, val and val: the test split is empty, and an
    empty run must not be recorded as if it were a result."""
    data = png_folder(tmp_path / "data")
    out = tmp_path / "out"
    result = invoke("run", "--datasets", f"folder:{data}", "--codecs", "png", *QUICK,
                    "--out", out)
    line = error_line(result)
    assert line == (f"Error: the test split of folder:{data} holds no image to code (see the "
                    "lines above); choose another --split (all: every image), or add images")
    assert "test split: 0 of 3 images" in result.output
    assert not (out / "results.sqlite").exists()


def test_write_dicom_holding_out_is_refused_before_coding(tmp_path):
    """The export at the end would find the results in its folder: refused at the start."""
    out = tmp_path / "out"
    result = invoke("run", "--codecs", "jpeg2000", "--limit", "1", *QUICK, "--out", out,
                    "--write-dicom", tmp_path)
    assert f"--write-dicom {tmp_path} holds --out {out}" in error_line(result)
    assert not out.exists()
