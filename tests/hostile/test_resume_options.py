"""``run --resume`` continues the run as it was started: every option the first command
gave is kept (those that only say where and how to code, and what to write at the end,
included), and an option that would change what the run codes is refused, not ignored.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from medbench.benchmark.store import STORE_NAME, ResultsStore
from tests.hostile.cli_helpers import QUICK, error_line, invoke, png_folder

FIRST = ["--codecs", "jpeg2000,png", "--limit", "2", *QUICK]


def _interrupt(out: Path) -> None:
    """Make the latest run look cut short: some of its cells missing, status interrupted."""
    db = sqlite3.connect(out / STORE_NAME)
    db.execute("DELETE FROM results WHERE setting IN ('ratio=10', 'lossless')")
    db.execute("UPDATE runs SET status = 'interrupted'")
    db.commit()
    db.close()


def _rows_and_runs(out: Path) -> tuple[int, list]:
    store = ResultsStore.open_existing(out)
    try:
        return len(store.frame()), store.runs()
    finally:
        store.close()


def _interrupted(out: Path) -> Path:
    result = invoke("run", *FIRST, "--no-report", "--no-cache", "--out", out)
    assert result.exit_code == 0, result.output
    _interrupt(out)
    return out


@pytest.fixture
def interrupted(tmp_path) -> Path:
    return _interrupted(tmp_path / "out")


@pytest.fixture(scope="module")
def interrupted_once(tmp_path_factory) -> Path:
    """For tests that must leave it as it is."""
    return _interrupted(tmp_path_factory.mktemp("resume") / "out")


def test_resume_keeps_the_outputs_and_execution_options(tmp_path, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "out"
    monkeypatch.setenv("MEDBENCH_CACHE", str(cache))
    data = png_folder(tmp_path / "data")  # file datasets use the prepared-image cache
    first = ["run", "--datasets", f"folder:{data}", "--split", "all", "--codecs",
             "jpeg2000,png", *QUICK, "--out", out]
    assert invoke(*first, "--no-report", "--no-cache").exit_code == 0
    _interrupt(out)
    result = invoke("run", "--resume", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "resuming run" in result.output and ", but" not in result.output
    assert not (out / "report").exists()  # --no-report kept
    assert not [p for p in cache.rglob("*") if p.is_file()]  # --no-cache kept
    assert _rows_and_runs(out)[0] == 3 * 8


def test_resume_writes_the_dicom_export_the_run_asked_for(tmp_path):
    out, dicom = tmp_path / "out", tmp_path / "dicom"
    assert invoke("run", *FIRST, "--no-report", "--out", out, "--write-dicom",
                  dicom).exit_code == 0
    first = sorted(p.relative_to(dicom) for p in dicom.rglob("*.dcm"))
    assert len(first) == 2 * 7 + 2  # jpeg2000's 7 settings and a reference, per image
    _interrupt(out)
    (dicom / "sample" / "jpeg2000_ratio=10" / "rg1_r4c1.dcm").unlink()
    (dicom / "sample" / "jpeg2000_ratio=10" / "stale.dcm").write_bytes(b"x")  # not listed
    result = invoke("run", "--resume", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    # The folder held this run's own export: it is replaced, not refused as "other files".
    assert sorted(p.relative_to(dicom) for p in dicom.rglob("*.dcm")) == sorted(
        [*first, Path("sample/jpeg2000_ratio=10/stale.dcm")])
    assert "dicom:   14 coded and 2 reference file(s)" in result.output


def test_resume_report_flag_turns_the_report_back_on(interrupted):
    result = invoke("run", "--resume", "--out", interrupted, "--no-progress", "--report")
    assert result.exit_code == 0, result.output
    assert "but --report (was --no-report)" in result.output
    assert (interrupted / "report" / "index.html").is_file()


def test_resume_takes_new_execution_options_and_says_so(interrupted):
    result = invoke("run", "--resume", "--out", interrupted, "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "with its original arguments, but --workers 1 (was without --workers)" \
        in result.output


def test_resume_accepts_the_first_commands_options_again(interrupted):
    result = invoke("run", "--resume", *FIRST, "--no-report", "--no-cache", "--out",
                    interrupted)
    assert result.exit_code == 0, result.output
    assert ", but" not in result.output


@pytest.mark.parametrize("change, said", [
    (["--codecs", "jpeg"], "with --codecs jpeg2000,png, not --codecs jpeg: drop --codecs"),
    (["--codecs", "all"], "with --codecs jpeg2000,png, not --codecs all"),
    (["--target", "ratio=10"], "with without --target, not --target ratio=10"),
    (["--limit", "3"], "with --limit 2, not --limit 3"),
    (["--protocol", "native"], "with --protocol paper, not --protocol native"),
    (["--split", "all"], "with --split test, not --split all"),
    (["--datasets", "synthetic:2"], "with --datasets sample, not --datasets synthetic:2"),
    (["--repeats", "2"], "with --repeats 0, not --repeats 2"),
    (["--device", "cpu"], "with --device auto, not --device cpu"),
    (["--models", "elsewhere"], "with --models medbench-models, not --models elsewhere"),
    (["--limit", "3", "--seed", "4"], "with --limit 2; --seed 0, not --limit 3; --seed 4: "
                                      "drop --limit and --seed"),
])
def test_resume_refuses_options_that_change_the_run(interrupted_once, change, said):
    before = _rows_and_runs(interrupted_once)
    result = invoke("run", "--resume", "--out", interrupted_once, "--no-progress", *change)
    line = error_line(result)
    assert line.startswith("Error: --resume continues run ") and said in line, line
    assert "or start a new run without --resume" in line
    assert _rows_and_runs(interrupted_once) == before  # nothing coded, nothing recorded


def _train(models: Path, seed: int) -> None:
    result = invoke("train", "--model", "ae", "--dataset", "sample", "--size", "64", "--crop",
                    "64", "--limit", "2", "--latent", "2", "--width", "8", "--device", "cpu",
                    "--no-progress", "--steps", "2", "--seed", seed, "--name", "tiny",
                    "--models", models)
    assert result.exit_code == 0, result.output


def test_resume_refuses_a_model_retrained_since(tmp_path, no_pretrained, one_torch_thread):
    models, out = tmp_path / "models", tmp_path / "out"
    _train(models, seed=0)
    first = invoke("run", "--codecs", "ae,png", "--models", models, "--limit", "1", *QUICK,
                   "--no-report", "--out", out)
    assert first.exit_code == 0, first.output
    _interrupt(out)  # png lossless is to be coded again
    shutil.rmtree(models / "ae" / "tiny")
    _train(models, seed=1)  # the same setting name, another model
    before = _rows_and_runs(out)
    line = error_line(invoke("run", "--resume", "--out", out, "--no-progress"))
    assert "--resume: the model of ae tiny is not the one run" in line
    assert "its rows would mix two models" in line
    assert _rows_and_runs(out) == before


def test_ctrl_c_during_the_export_says_how_to_finish_it(tmp_path, monkeypatch):
    from medbench.writeback import export as export_module

    out, dicom = tmp_path / "out", tmp_path / "dicom"
    written = []

    def interrupted_after_one(*args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(args)
        return original(*args, **kwargs)

    original = export_module.write_encapsulated
    monkeypatch.setattr(export_module, "write_encapsulated", interrupted_after_one)
    result = invoke("run", *FIRST, "--no-report", "--out", out, "--write-dicom", dicom)
    assert result.exit_code == 130
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Interrupted while writing the DICOM export. Every cell of run "
        f"{_rows_and_runs(out)[1][0][0]} is saved in {out}; `medbench run --out {out} "
        "--resume` writes the DICOM export again.")
    assert (dicom / "index.csv").is_file()  # what was done is listed
    monkeypatch.undo()
    resumed = invoke("run", "--resume", "--out", out, "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert len(list(dicom.rglob("*.dcm"))) == 2 * 7 + 2
