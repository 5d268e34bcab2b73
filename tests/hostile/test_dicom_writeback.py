"""Bad input to the DICOM export: a full folder, a setting with no DICOM syntax, a 10-bit
image for JPEG baseline."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from medbench.benchmark.runner import RunConfig, run
from medbench.cli import main
from medbench.codecs import get_codec
from medbench.errors import MedbenchError, UnsupportedInput
from medbench.writeback import check_out_folder, export_run


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("wb-hostile") / "results"
    run(RunConfig(codecs=["png", "jpegls"], datasets=["sample"], protocol="native", limit=1,
                  repeats=0, workers=1, use_cache=False), out)
    return out


def test_a_folder_holding_other_files_is_refused_unless_overwrite(tmp_path, results):
    out = tmp_path / "dicom"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(MedbenchError, match="already holds files.*--overwrite"):
        export_run(results, out, codec="jpegls", setting="lossless")
    exported = export_run(results, out, codec="jpegls", setting="lossless", overwrite=True)
    assert len(exported.written) == 1 and (out / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(MedbenchError, match="is a file"):
        check_out_folder(tmp_path / "file", overwrite=True)


def test_a_setting_with_no_dicom_syntax_is_a_clear_error(tmp_path, results):
    with pytest.raises(MedbenchError, match="png lossless.*no DICOM transfer syntax"):
        export_run(results, tmp_path / "dicom", codec="png", setting="lossless")
    with pytest.raises(MedbenchError, match="no setting 'q=50'"):
        export_run(results, tmp_path / "dicom", codec="jpegls", setting="q=50")


def test_jpeg_baseline_refuses_a_ten_bit_image():
    with pytest.raises(UnsupportedInput, match="8-bit images only, not 10-bit"):
        get_codec("jpeg").dicom_syntax("q=50", 10)
    assert get_codec("jpeg12").dicom_syntax("q=50", 10) == "1.2.840.10008.1.2.4.51"


def test_cli_prints_one_error_line(tmp_path, results):
    out = tmp_path / "dicom"
    out.mkdir()
    (out / "x").write_text("x")
    cli = CliRunner().invoke(main, ["dicom-export", str(results), "--codec", "jpegls",
                                    "--out", str(out)])
    assert cli.exit_code == 1
    assert cli.output.strip().splitlines() == [
        f"Error: DICOM output folder {out} already holds files; choose an empty folder or "
        "pass --overwrite to replace what it holds"]
    cli = CliRunner().invoke(main, ["dicom-export", str(results), "--codec", "jpegls",
                                    "--out", str(tmp_path / "new")])
    assert cli.exit_code == 0, cli.output
    assert "dicom:   6 coded and 1 reference file(s)" in cli.output
